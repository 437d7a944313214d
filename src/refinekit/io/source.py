"""Opening a source image: the pixel limit, and its content as bytes or as a path."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from ..errors import ImageReadError

# Refuse images whose header declares more pixels than this before decoding them
# (a decompression bomb is a tiny file that claims gigapixels).
MAX_PIXELS = 1 << 27  # 134 M pixels, e.g. 11585 x 11585


def quiet_pillow() -> None:
    """Silence Pillow's DecompressionBombWarning, process-wide: refinekit applies its own
    limit (MAX_PIXELS, above Pillow's warning threshold of about 89 M pixels) and names the
    file itself. A `warnings.catch_warnings()` around each open is not enough: its filters
    are global, so on a decoding thread pool one thread leaving its block restores filters
    without the `ignore` while another thread is opening a large image, and Pillow's raw
    warning reached stderr. Cheap when the filter is already first; call it before opening
    an image with Pillow (a caller may have reset the filters since the last call)."""
    from PIL import Image

    entry = ("ignore", None, Image.DecompressionBombWarning, None, 0)
    if not warnings.filters or warnings.filters[0] != entry:  # first, so no filter overrides it
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def check_pixels(path: Path, width: int, height: int) -> None:
    """Raise ImageReadError naming `path` when width x height exceeds MAX_PIXELS."""
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: declares {width}x{height} pixels, more than the limit of "
            f"{MAX_PIXELS} (a decompression bomb or a far too large image)"
        )


def check_frames(path: Path, frames: int, fmt: str | None) -> None:
    """Raise ImageReadError naming `path` when it holds more than one frame: refinekit
    refines single images, and keeping the first frame would silently drop the rest."""
    if frames > 1:
        kind = "pages" if fmt == "TIFF" else "frames"
        raise ImageReadError(
            f"{path}: a multi-frame {fmt or 'image'} file ({frames} {kind}); refinekit refines "
            f"single-frame images only and never keeps one {kind[:-1]} silently: split it into "
            "one file per frame"
        )


def apng_frames(data: bytes) -> int:
    """The frame count of an animated PNG's acTL chunk (which comes before the first IDAT),
    1 for a still PNG."""
    end = data.find(b"IDAT")
    at = data.find(b"acTL", 8, end if end > 0 else len(data))
    if at < 4 or data[at - 4 : at] != b"\x00\x00\x00\x08" or len(data) < at + 8:
        return 1
    return max(1, int.from_bytes(data[at + 4 : at + 8], "big"))


def readable(path: Path, data: bytes | None = None):
    """What Pillow and tifffile open: `data` as an in-memory file when given, else `path`
    (a path, not an open file, so they close it themselves)."""
    return io.BytesIO(data) if data is not None else path
