"""HxWxC uint8/uint16 arrays -> image file bytes, in the source's format, mode and bit depth.

What each format keeps is its row in `formats.FORMATS` (and the table in docs/refine.md):
palette (P) images are written as RGB, or RGBA when they have transparency; a mode a format
cannot store goes to the row's fallback; 16-bit pixels keep 16 bits where the row says how
(PNG, TIFF) and are rounded to 8 bits elsewhere. No JAX here.
"""

from __future__ import annotations

import io

import numpy as np

from ..errors import OutputError
from .formats import FORMAT_BY_SUFFIX, Format, format_of
from .meta import SourceMeta

__all__ = ["OutputError", "encode_image", "output_pixels"]

_PALETTE_MODES = {"P", "PA"}
_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def output_pixels(pixels: np.ndarray, meta: SourceMeta) -> np.ndarray:
    """The pixels as they will be stored: palette images keep alpha only when it is used."""
    if meta.mode in _PALETTE_MODES and pixels.shape[-1] == 4:
        opaque = np.iinfo(pixels.dtype).max
        if np.all(pixels[..., 3] == opaque):
            return pixels[..., :3]
    return pixels


def encode_image(
    pixels: np.ndarray, suffix: str, meta: SourceMeta | None = None, *, jpeg_quality: int = 95
) -> bytes:
    """Encode HxWxC uint8/uint16 `pixels` as the format of `suffix`, the way `meta` was stored.

    Args:
      pixels: HxWxC (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA), uint8 or uint16.
      suffix: the output file's suffix (".png", ".jpg", ...); it picks the format.
      meta: what the source file was (`probe_source`); None encodes with plain defaults.
      jpeg_quality: 1-100, for JPEG and lossy WebP.

    Returns the encoded file's bytes. Raises OutputError for an unknown suffix or layout.
    """
    from PIL import Image

    meta = meta or SourceMeta()
    row = format_of(suffix)
    if row is None:
        raise OutputError(f"cannot write {suffix!r} files (known: {', '.join(FORMAT_BY_SUFFIX)})")
    if pixels.ndim != 3 or pixels.shape[-1] not in _MODE_BY_CHANNELS:
        raise OutputError(f"expected HxWxC pixels with C in 1..4, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise OutputError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    pixels = output_pixels(pixels, meta)
    channels = pixels.shape[-1]

    if pixels.dtype == np.uint16:
        if row.colour16 is not None and channels > 1:
            return row.colour16(pixels, meta)
        if row.gray16 is not None and channels == 1:
            return _save(Image.fromarray(row.gray16(pixels[..., 0], meta)), row, meta, jpeg_quality)
        # The others hold 8 bits per channel.
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

    mode = _MODE_BY_CHANNELS[channels]
    image = Image.fromarray(np.ascontiguousarray(pixels if channels > 1 else pixels[..., 0]))
    if mode not in row.modes:
        image = image.convert(row.fallbacks[mode])
    return _save(image, row, meta, jpeg_quality)


def _save(image, row: Format, meta: SourceMeta, jpeg_quality: int) -> bytes:
    options: dict = {}
    if meta.dpi:
        options["dpi"] = meta.dpi
    for key in ("icc_profile", "exif"):
        if key in row.keeps and getattr(meta, key):
            options[key] = getattr(meta, key)
    options.update(row.save_options(meta, jpeg_quality))
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=row.name, **options)
    except Exception as exc:  # Pillow raises OSError, ValueError, KeyError for what it cannot write
        raise OutputError(f"cannot encode a {image.mode} image as {row.name}: {exc}") from exc
    return buffer.getvalue()
