"""16-bit colour TIFF through tifffile (optional: without it Pillow reads such files at 8 bits)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..errors import ImageReadError, OutputError
from .source import check_frames, check_pixels, readable


def read_tiff(path: Path, data: bytes | None = None) -> tuple[np.ndarray, str] | None:
    """(pixels, Pillow mode) of a TIFF's first page through tifffile (16 bits per channel
    kept); None without tifffile or when it cannot decode the file (a compression that needs
    imagecodecs), so that Pillow reports what is wrong."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(readable(path, data)) as tif:
            check_frames(path, len(tif.pages), "TIFF")
            page = tif.pages[0]
            axes, shape = page.axes, page.shape
            height = shape[axes.index("Y")] if "Y" in axes else 0
            width = shape[axes.index("X")] if "X" in axes else 0
            check_pixels(path, width, height)
            array = page.asarray()
    except ImageReadError:
        raise
    except Exception:  # noqa: BLE001 - leave the file to Pillow, which reports what is wrong
        return None
    if axes == "SYX":  # planar configuration "separate": one plane per sample
        array = np.moveaxis(array, 0, -1)
    elif axes not in ("YX", "YXS"):
        return None
    channels = 1 if array.ndim == 2 else array.shape[-1]
    return array, {1: "I;16", 2: "LA", 3: "RGB", 4: "RGBA"}.get(channels, "RGB")


def encode_tiff16(pixels: np.ndarray, compressed: bool) -> bytes:
    """A TIFF of HxWxC uint16 `pixels` (C = 2..4: gray+alpha, RGB, RGBA); `compressed`:
    deflate, which tifffile writes with the standard library alone (LZW would need
    imagecodecs), so a compressed source gives a deflate-compressed output, lossless either way.
    """
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - tifffile ships with the test environment
        raise OutputError("writing a 16-bit colour TIFF needs the tifffile package") from exc
    photometric = "rgb" if pixels.shape[-1] in (3, 4) else "minisblack"
    extrasamples = ["unassalpha"] if pixels.shape[-1] in (2, 4) else None
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric=photometric,
        planarconfig="contig",
        extrasamples=extrasamples,
        compression="zlib" if compressed else None,
    )
    return buffer.getvalue()
