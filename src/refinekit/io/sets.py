"""Image sets: every image below a folder decoded to one float32 NxHxWxC array in [0, 1].

This is how training and gap reports read their sets (decode, drop alpha, one channel
conversion, one resize), so every set is read the same way. No JAX here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, ImageReadError
from .decode import ImageInfo, read_image
from .files import list_images
from .pixels import colour_channels, convert_channels, to_unit_float
from .regular import open_regular
from .resize import random_crop, resize
from .source import MAX_PIXELS, quiet_pillow


@dataclass
class LoadedSet:
    """A decoded image set: float32 NxHxWxC in [0, 1], plus what was skipped."""

    images: np.ndarray
    paths: list[Path]
    skipped: list[str] = field(default_factory=list)  # "path: reason" per undecodable file
    bit_depth: int = 8
    source_sizes: set[tuple[int, int]] = field(default_factory=set)
    source_channels: set[int] = field(default_factory=set)


def read_many(
    paths: Sequence[Path], workers: int | None = None
) -> Iterable[tuple[Path, np.ndarray | None, ImageInfo | str]]:
    """Decode files on a thread pool, in order; yields (path, array, info) or (path, None, error)."""

    def one(path: Path):
        try:
            array, info = read_image(path)
            return path, array, info
        except ImageReadError as exc:
            return path, None, str(exc)

    workers = workers or min(8, (os.cpu_count() or 2) * 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(one, paths)


def probe_sizes(paths: Sequence[Path]) -> dict[Path, tuple[int, int]]:
    """(H, W) per readable file from headers only (unreadable files are left out; so are
    FIFOs and devices, opened without blocking and never read: see regular.py)."""
    from PIL import Image

    quiet_pillow()
    sizes = {}
    for path in paths:
        try:
            fd, _ = open_regular(path)
            with warnings.catch_warnings(), os.fdopen(fd, "rb") as file:
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(file) as probe:
                    width, height = probe.size
        except Exception:  # noqa: BLE001 - reported when the file is decoded
            continue
        if width * height <= MAX_PIXELS:  # larger ones are refused when decoded
            sizes[path] = (height, width)
    return sizes


def load_set(
    root: Path,
    *,
    flag: str,
    channels: int | None,
    size: tuple[int, int] | None,
    crop: bool = False,
    strict: bool = False,
    seed: int = 0,
    limit: int | None = None,
) -> LoadedSet:
    """Decode every image below `root` to float32 NxHxWxC in [0, 1].

    channels: convert to this many colour channels (None: keep, all files must agree).
    size: resize (or, with `crop`, randomly crop) to (H, W); None: all must share one size.
    strict: an undecodable file is an error instead of a skip.
    """
    paths = list_images(root, flag)
    if limit is not None:
        paths = paths[:limit]
    rng = np.random.default_rng(seed)
    arrays, kept, skipped = [], [], []
    depth = 8
    sizes: set[tuple[int, int]] = set()
    chans: set[int] = set()
    for path, array, info in read_many(paths):
        if array is None:
            if strict:
                raise DataError(f"{flag}: {info} (--strict makes undecodable files fatal)")
            skipped.append(str(info))
            continue
        if array.dtype == np.uint16:
            depth = 16
        sizes.add(array.shape[:2])
        image = colour_channels(to_unit_float(array))
        chans.add(image.shape[-1])
        if channels is not None:
            image = convert_channels(image, channels)
        if size is not None and image.shape[:2] != tuple(size):
            image = random_crop(image, size, rng) if crop else resize(image, size)
        arrays.append(image)
        kept.append(path)
    if not arrays:
        first = skipped[0] if skipped else ""
        raise DataError(
            f"{flag} {root}: none of the {len(paths)} image files could be decoded ({first})"
        )
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join(f"{s[0]}x{s[1]}x{s[2]}" for s in sorted(shapes)[:4])
        differ, hints = [], []
        if len({s[:2] for s in shapes}) > 1:
            differ.append("sizes")
            hints.append("pass --size H W to resize them")
        if len({s[2] for s in shapes}) > 1:
            differ.append("channel counts")
            hints.append("pass --channels 1 or --channels 3 to convert them")
        raise DataError(
            f"{flag} {root}: images have different {' and '.join(differ)} ({listed}); "
            + "; ".join(hints)
        )
    return LoadedSet(np.stack(arrays), kept, skipped, depth, sizes, chans)
