"""Image files -> HxWxC uint8/uint16 arrays: the one decoding path for training, refinement and
gap reports, so every set is decoded the same way. No JAX here.

Pillow (through imageio, the image front door) decodes most files. It reads 16-bit colour PNG
(RGB, RGBA, gray+alpha) at 8 bits, so those go through `png16.read_png16`; 16-bit colour TIFF
goes through tifffile when it is installed (`tiff.read_tiff`; else Pillow, at 8 bits).
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .formats import BY_NAME
from .meta import SourceMeta, meta_of, probe_source
from .png16 import png_header, read_png16
from .regular import IMAGE_BYTES_CAP, NotRegularFile, read_regular
from .source import (
    MAX_PIXELS,
    apng_frames,
    check_frames,
    check_pixels,
    quiet_pillow,
    readable,
)
from .tiff import read_tiff

_TIFF_SUFFIXES = BY_NAME["TIFF"].suffixes
_ONE_OPEN_MODES = {"L", "LA", "RGB", "RGBA"}
_IN_MEMORY = re.compile(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>")


@dataclass(frozen=True)
class ImageInfo:
    """What a decoded file was, so refinement can write it back the same way."""

    mode: str  # Pillow mode of the file: L, LA, RGB, RGBA, I;16, P, CMYK, ...
    dtype: str  # uint8 or uint16 after decoding
    channels: int


def imageio():
    """imageio.v3, with its per-call search for the optional pillow_heif plugin made free.

    imageio's Pillow plugin tries `import pillow_heif` twice on every read; when the package
    is absent each failed import walks sys.path again (~0.2 ms per image, more than decoding
    a small PNG). Recording the absence once in sys.modules makes those imports fail at once,
    the same ImportError imageio expects. Nothing changes when pillow_heif is installed.
    """
    if "pillow_heif" not in sys.modules and importlib.util.find_spec("pillow_heif") is None:
        sys.modules["pillow_heif"] = None  # import now fails at once
    import imageio.v3 as iio

    return iio


def read_image(path: Path, data: bytes | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Decode one image to HxWxC uint8/uint16, with what it was.

    `data`, when given, is the file's content already read (refine reads each file once, to
    hash and decode the same bytes); `path` then only names the file in errors and picks the
    TIFF route by its suffix.

    Palette and CMYK images become RGB(A); 32-bit integer images become uint16, float images
    are taken as [0, 1] and become uint16 (values outside [0, 65535] or [0, 1], NaN or inf are
    an error, not silently clipped). A multi-frame file (animated PNG or WebP, multi-page
    TIFF) is refused by name: keeping one frame would silently drop the others.
    16-bit colour PNG is decoded at 16 bits (`read_png16`), and so is 16-bit colour TIFF when
    tifffile is installed.
    Raises ImageReadError naming the file for anything that cannot be decoded.
    """
    from PIL import Image

    iio = imageio()
    path = Path(path)
    try:
        if data is None:  # only regular files, without blocking, under a size cap
            data = _read_input(path)
        if not data:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        png = png_header(path, data)
        if png is not None:
            check_pixels(path, png.width, png.height)
            check_frames(path, apng_frames(data), "PNG")
        if png is not None and png.bits == 16 and png.colour_type in (2, 4, 6):
            array, mode = read_png16(path, data), {2: "RGB", 4: "LA", 6: "RGBA"}[png.colour_type]
        else:
            array, mode = _read_with_pillow(path, data, iio, Image)
    except ImageReadError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        # Pillow names the in-memory file it was given ("<_io.BytesIO object at 0x...>");
        # the message names the file already.
        reason = _IN_MEMORY.sub("", str(exc)).strip()
        raise ImageReadError(
            f"{path}: cannot decode image ({type(exc).__name__}: {reason})"
        ) from exc
    array = _normalise_dtype(np.asarray(array), path)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: unsupported image layout {array.shape}")
    return np.ascontiguousarray(array), ImageInfo(mode, str(array.dtype), array.shape[2])


def _read_input(path: Path) -> bytes:
    try:
        return read_regular(path, IMAGE_BYTES_CAP)[0]
    except NotRegularFile:
        raise
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read it ({exc.strerror or exc})") from exc


def _read_with_pillow(path: Path, data: bytes | None, iio, Image) -> tuple[np.ndarray, str]:
    source = path if data is None else data
    quiet_pillow()  # thread-safe; the block below alone was not (see quiet_pillow)
    with warnings.catch_warnings():
        # Pillow warns on large images; we apply our own limit instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(readable(path, data)) as probe:
                mode, fmt = probe.mode, probe.format
                width, height = probe.size
                bits = probe.tag_v2.get(258) if fmt == "TIFF" else None
                frames = getattr(probe, "n_frames", 1)
        except Image.DecompressionBombError as exc:  # over twice Pillow's own limit
            # One limit, refinekit's (Pillow's own is an implementation detail).
            found = re.search(r"\((\d+) pixels\)", str(exc))
            declared = f"{found.group(1)} pixels" if found else "more pixels"
            raise ImageReadError(
                f"{path}: declares {declared}, more than the limit of {MAX_PIXELS} "
                "(a decompression bomb or a far too large image)"
            ) from None
        except Image.UnidentifiedImageError:
            if path.suffix.lower() in _TIFF_SUFFIXES:
                tiff = read_tiff(path, data)  # e.g. 16-bit gray+alpha, which Pillow cannot open
                if tiff is not None:
                    return tiff
            raise
        check_pixels(path, width, height)
        check_frames(path, frames, fmt)
        if (
            fmt == "TIFF"
            and mode in ("RGB", "RGBA", "RGBX")
            and bits
            and max(np.atleast_1d(bits)) == 16
        ):
            tiff = read_tiff(path, data)
            if tiff is not None:
                return tiff
        array = iio.imread(source, index=0, plugin="pillow", mode=_decode_mode(mode))
    return array, mode


def _decode_mode(mode: str) -> str | None:
    """The Pillow mode to decode a file of `mode` into (None keeps it)."""
    if mode in ("L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
        return None
    if mode in ("1",):
        return "L"
    if mode in ("P", "PA", "RGBa", "La"):
        return "RGBA"
    return "RGB"  # CMYK, YCbCr, LAB, HSV, ...


def _normalise_dtype(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        values = array.astype(np.float64)
        if values.size and not (
            np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1
        ):
            finite = values[np.isfinite(values)]
            span = f"[{finite.min():g}, {finite.max():g}]" if finite.size else "none finite"
            extra = " and NaN/inf" if finite.size < values.size else ""
            raise ImageReadError(
                f"{path}: float image with values {span}{extra}; float images are read as "
                "intensities in [0, 1]: rescale it to [0, 1] or save it as 16-bit"
            )
        return np.round(values * 65535).astype(np.uint16)
    if np.issubdtype(array.dtype, np.integer):
        # 32-bit integer images (Pillow mode I) usually hold 16-bit data.
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageReadError(
                f"{path}: integer image with values [{array.min()}, {array.max()}], outside "
                "the 16-bit range [0, 65535]; rescale it or save it as 16-bit"
            )
        return array.astype(np.uint16)
    raise ImageReadError(f"{path}: unsupported pixel type {array.dtype}")


def read_source(path: Path, data: bytes) -> tuple[np.ndarray, SourceMeta]:
    """Decode a file's content `data` and read what it was: `read_image(path, data)[0]` and
    `probe_source(path, data)`, with the same results and errors.

    refine decodes every input this way. For the common files (8-bit PNG, JPEG, BMP or WebP in
    L, LA, RGB or RGBA: the formats marked `one_open` in the table) it opens the file once
    instead of three times: on a small PNG the Python of each Pillow open costs more than the
    decoding. Everything else, and any file Pillow has trouble with, takes the general route
    (whose errors name the problem).
    """
    from PIL import Image

    path = Path(path)
    quiet_pillow()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS applies
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                row = BY_NAME.get(im.format or "")
                if (
                    row is not None
                    and row.one_open
                    and im.mode in _ONE_OPEN_MODES
                    and width * height <= MAX_PIXELS
                    and getattr(im, "n_frames", 1) == 1  # else read_image refuses it by name
                ):
                    meta = meta_of(im, path, data)
                    if im.format != "PNG" or (meta.bits is not None and meta.bits <= 8):
                        pixels = np.asarray(im)
                        if pixels.dtype == np.uint8 and pixels.ndim in (2, 3):
                            return np.ascontiguousarray(pixels.reshape(height, width, -1)), meta
    except Exception:  # noqa: BLE001 - the general route below reports what is wrong
        pass
    pixels, _ = read_image(path, data)
    return pixels, probe_source(path, data)
