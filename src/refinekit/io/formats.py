"""The format table: everything format-specific that refinekit reads and writes, one row each.

A format is one `Format` row in `FORMATS`: its suffixes (which decide the format, for inputs
and outputs alike), the Pillow modes it stores at 8 bits and where the other modes go, the
source metadata written back, its Pillow save options, and how it stores 16 bits per channel
(None: it holds 8 bits, and 16-bit pixels are rounded to 8). `decode.py` and `encode.py` read
the table; adding a format is adding a row (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from . import png16, tiff

if TYPE_CHECKING:
    from .meta import SourceMeta

SaveOptions = Callable[["SourceMeta", int], dict]  # (source meta, jpeg_quality) -> Pillow options
Encode16 = Callable[[np.ndarray, "SourceMeta"], bytes]  # HxWxC uint16, C > 1 -> file bytes
Gray16 = Callable[[np.ndarray, "SourceMeta"], np.ndarray]  # HxW uint16 -> the array Pillow saves


@dataclass(frozen=True)
class Format:
    """One row of the format table."""

    name: str  # Pillow's format name
    suffixes: tuple[str, ...]  # lower case, with the dot
    modes: frozenset[str]  # Pillow modes stored at 8 bits per channel
    fallbacks: Mapping[str, str]  # any other of L, LA, RGB, RGBA -> the mode written instead
    keeps: frozenset[str]  # source metadata written back besides dpi: icc_profile, exif
    save_options: SaveOptions
    colour16: Encode16 | None = None  # 16-bit gray+alpha / RGB / RGBA (Pillow cannot)
    gray16: Gray16 | None = None  # 16-bit gray through Pillow; None with colour16: 8 bits only
    one_open: bool = False  # read_source decodes 8-bit L/LA/RGB/RGBA files with one Pillow open
    notes: str = field(default="", compare=False)  # for docs/refine.md


_LOSSLESS_TIFF = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"}


def _png_options(meta: SourceMeta, quality: int) -> dict:
    return {"compress_level": 6}


def _jpeg_options(meta: SourceMeta, quality: int) -> dict:
    options: dict = {"quality": quality}
    if meta.jpeg_subsampling is not None:
        options["subsampling"] = meta.jpeg_subsampling
    if meta.progressive:
        options["progressive"] = True
    return options


def _tiff_options(meta: SourceMeta, quality: int) -> dict:
    if meta.tiff_compression in _LOSSLESS_TIFF:
        return {"compression": meta.tiff_compression}
    return {}


def _webp_options(meta: SourceMeta, quality: int) -> dict:
    if meta.webp_lossless:
        return {"lossless": True, "exact": True, "quality": 80, "method": 4}
    return {"quality": quality, "alpha_quality": 100, "exact": True, "method": 4}


def _no_options(meta: SourceMeta, quality: int) -> dict:
    return {}


def _png_colour16(pixels: np.ndarray, meta: SourceMeta) -> bytes:
    return png16.encode_png16(pixels, dpi=meta.dpi)


def _tiff_colour16(pixels: np.ndarray, meta: SourceMeta) -> bytes:
    return tiff.encode_tiff16(pixels, compressed=meta.tiff_compression not in (None, "raw"))


def _gray16(gray: np.ndarray, meta: SourceMeta) -> np.ndarray:
    return np.ascontiguousarray(gray)  # Pillow mode I;16


def _tiff_gray16(gray: np.ndarray, meta: SourceMeta) -> np.ndarray:
    if meta.mode == "I":  # 32-bit integer gray stays 32-bit integer
        return gray.astype(np.int32)
    if meta.mode == "F":  # float gray stays float, in [0, 1]
        return gray.astype(np.float32) / np.float32(65535)
    return np.ascontiguousarray(gray)


_8BIT = frozenset({"L", "LA", "RGB", "RGBA"})

FORMATS: tuple[Format, ...] = (
    Format(
        "PNG",
        (".png",),
        _8BIT,
        {},
        frozenset({"icc_profile", "exif"}),
        _png_options,
        colour16=_png_colour16,
        gray16=_gray16,
        one_open=True,
        notes="zlib level 6; 16-bit colour through refinekit's own encoder",
    ),
    Format(
        "JPEG",
        (".jpg", ".jpeg"),
        frozenset({"L", "RGB"}),
        {"LA": "L", "RGBA": "RGB"},
        frozenset({"icc_profile", "exif"}),
        _jpeg_options,
        one_open=True,
        notes="--jpeg-quality; the source's chroma subsampling and progressive flag",
    ),
    Format(
        "BMP",
        (".bmp",),
        frozenset({"L", "RGB", "RGBA"}),
        {"LA": "RGBA"},
        frozenset(),
        _no_options,
        one_open=True,
    ),
    Format(
        "TIFF",
        (".tif", ".tiff"),
        _8BIT,
        {},
        frozenset({"icc_profile"}),
        _tiff_options,
        colour16=_tiff_colour16,
        gray16=_tiff_gray16,
        notes="the source's lossless compression (16-bit colour: deflate); I and F gray kept",
    ),
    Format(
        "WEBP",
        (".webp",),
        frozenset({"RGB", "RGBA"}),
        {"L": "RGB", "LA": "RGBA"},
        frozenset({"icc_profile", "exif"}),
        _webp_options,
        one_open=True,
        notes="lossless stays lossless (exact); lossy at --jpeg-quality, alpha lossless",
    ),
)

BY_SUFFIX: dict[str, Format] = {suffix: f for f in FORMATS for suffix in f.suffixes}
BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}
IMAGE_EXTENSIONS: tuple[str, ...] = tuple(BY_SUFFIX)
FORMAT_BY_SUFFIX: dict[str, str] = {suffix: f.name for suffix, f in BY_SUFFIX.items()}


def format_of(suffix: str) -> Format | None:
    """The row for a file suffix (any case), or None."""
    return BY_SUFFIX.get(suffix.lower())
