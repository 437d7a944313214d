"""Opening a source image: the pixel limit, and its content as bytes or as a path."""

from __future__ import annotations

import io
from pathlib import Path

from ..errors import ImageReadError

# Refuse images whose header declares more pixels than this before decoding them
# (a decompression bomb is a tiny file that claims gigapixels).
MAX_PIXELS = 1 << 27  # 134 M pixels, e.g. 11585 x 11585


def check_pixels(path: Path, width: int, height: int) -> None:
    """Raise ImageReadError naming `path` when width x height exceeds MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: declares {width}x{height} pixels, more than the limit of "
            f"{MAX_PIXELS} (a decompression bomb or a far too large image)"
        )


def readable(path: Path, data: bytes | None = None):
    """What Pillow and tifffile open: `data` as an in-memory file when given, else `path`
    (a path, not an open file, so they close it themselves)."""
    return io.BytesIO(data) if data is not None else path
