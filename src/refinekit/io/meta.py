"""What a source image file was beyond its pixels (`SourceMeta`), read from its header."""

from __future__ import annotations

import io
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .png16 import png_header
from .source import quiet_pillow, readable


@dataclass(frozen=True)
class SourceMeta:
    """What a source image file was, beyond its pixels, so its output can be written the same way."""

    format: str | None = None  # Pillow's format name: PNG, JPEG, TIFF, BMP, WEBP
    mode: str = ""  # Pillow mode of the file
    bits: int | None = None  # stored bits per sample (PNG and TIFF), when known
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    jpeg_subsampling: int | None = None  # 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    progressive: bool = False
    webp_lossless: bool | None = None
    tiff_compression: str | None = None


def probe_source(path: Path, data: bytes | None = None) -> SourceMeta:
    """Read what `path` was from its header (no pixel decoding); defaults for what is unknown.

    `data`, when given, is the file's content already read; `path` then is only its name.
    """
    from PIL import Image

    path = Path(path)
    quiet_pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(readable(path, data)) as im:
                return meta_of(im, path, data)
    except Exception:  # noqa: BLE001 - the decoder reports unreadable files
        return SourceMeta()


def meta_of(im, path: Path, data: bytes | None) -> SourceMeta:
    """The SourceMeta of an opened Pillow image (`path`/`data`: its file, for what Pillow
    does not tell: a PNG's stored bit depth, a WebP's bitstream kind)."""
    from PIL import JpegImagePlugin

    fmt, mode, info = im.format, im.mode, im.info
    subsampling = JpegImagePlugin.get_sampling(im) if fmt == "JPEG" else None
    bits = None
    if fmt == "TIFF":
        per_sample = im.tag_v2.get(258)
        if per_sample:
            bits = int(max(np.atleast_1d(per_sample)))
    elif fmt == "PNG":
        header = png_header(path, data)
        bits = header.bits if header else None
    dpi = info.get("dpi")
    return SourceMeta(
        format=fmt,
        mode=mode,
        bits=bits,
        icc_profile=info.get("icc_profile") or None,
        exif=info.get("exif") or None,
        dpi=(float(dpi[0]), float(dpi[1])) if dpi else None,
        jpeg_subsampling=subsampling if subsampling in (0, 1, 2) else None,
        progressive=bool(info.get("progressive") or info.get("progression")),
        webp_lossless=_webp_is_lossless(path, data) if fmt == "WEBP" else None,
        tiff_compression=info.get("compression") if fmt == "TIFF" else None,
    )


def _webp_is_lossless(path: Path, data: bytes | None = None) -> bool | None:
    """True for a VP8L (lossless) bitstream, False for VP8 (lossy), None if neither is found."""
    with io.BytesIO(data) if data is not None else open(path, "rb") as f:
        riff = f.read(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WEBP":
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            if fourcc == b"VP8L":
                return True
            if fourcc == b"VP8 ":
                return False
            f.seek(size + (size & 1), os.SEEK_CUR)
