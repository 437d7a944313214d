"""Reading the sets for a gap report: one reading path, one common size and mode, a canonical
order, the real split, class labels and the synthetic/refined pairing.

Every set is read by refinekit.io.sets.load_set (decode, drop alpha, one channel conversion,
one antialiased resize), so the sets differ only in their content. The order of the files on
disk never matters: each set is sorted by a hash of its decoded pixels before any seeded
choice (subsampling, the real split, bootstrap draws, classifier folds) is made.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, UsageError
from ..io.classes import folder_classes
from ..io.files import list_images
from ..io.sets import load_set, probe_sizes

MIN_SIZE = 8  # pixels per side: the spectrum needs a few frequency rings
MIN_IMAGES = 10  # per compared set; the real set needs twice this (it is split in two)
RESIZE_FILTER = "antialiased triangle"
MODES = {1: "L", 3: "RGB"}


@dataclass
class ImageSet:
    """A decoded set in canonical order: float32 NxHxWxC in [0, 1] and what describes it."""

    name: str
    images: np.ndarray
    names: list[str]  # relative paths (POSIX), in the same order as images
    root: str | None = None
    skipped: list[str] = field(default_factory=list)
    source_sizes: list[tuple[int, int]] = field(default_factory=list)
    source_channels: list[int] = field(default_factory=list)
    bit_depth: int = 8

    def __len__(self) -> int:
        return len(self.images)

    def take(self, index: np.ndarray) -> ImageSet:
        return ImageSet(
            self.name,
            self.images[index],
            [self.names[i] for i in index],
            self.root,
            self.skipped,
            self.source_sizes,
            self.source_channels,
            self.bit_depth,
        )

    def class_names(self) -> list[str] | None:
        """Each image's top-level subfolder, or None unless every image is in one and there
        are at least two (io/classes.py, the rule training uses too)."""
        return folder_classes(self.names)

    def describe(self) -> dict:
        return {
            "path": self.root,
            "count": len(self),
            "skipped": list(self.skipped),
            "source_sizes": [list(s) for s in self.source_sizes],
            "source_channels": list(self.source_channels),
            "bit_depth": self.bit_depth,
        }


def common_size(real: Path, size: tuple[int, int] | None) -> tuple[int, int]:
    """--size if given, else the real set's size when all its images share one."""
    if size is not None:
        h, w = size
        if h < MIN_SIZE or w < MIN_SIZE:
            raise UsageError(f"--size {h} {w}: each side must be at least {MIN_SIZE} pixels")
        return int(h), int(w)
    sizes = set(probe_sizes(list_images(real, "--real")).values())
    if not sizes:
        raise DataError(f"--real {real}: none of the image headers could be read")
    if len(sizes) > 1:
        listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
        raise UsageError(
            f"--real {real}: images have {len(sizes)} different sizes ({listed}, ...); "
            "pass --size H W to choose the common size every set is resized to"
        )
    h, w = sizes.pop()
    if h < MIN_SIZE or w < MIN_SIZE:
        raise DataError(
            f"--real {real}: images are {h}x{w}; pass --size H W of at least {MIN_SIZE}"
        )
    return h, w


def read_set(
    name: str, root: Path, flag: str, channels: int | None, size: tuple[int, int], strict: bool
) -> ImageSet:
    """Decode one set through the common reading path, in canonical (content-hash) order."""
    root = Path(root)
    loaded = load_set(root, flag=flag, channels=channels, size=size, strict=strict)
    base = root if root.is_dir() else root.parent
    names = [p.relative_to(base).as_posix() for p in loaded.paths]
    images = loaded.images.astype(np.float32, copy=False)
    order = canonical_order(images)
    return ImageSet(
        name=name,
        images=images[order],
        names=[names[i] for i in order],
        root=str(root),
        skipped=list(loaded.skipped),
        source_sizes=sorted(loaded.source_sizes),
        source_channels=sorted(loaded.source_channels),
        bit_depth=loaded.bit_depth,
    )


def canonical_order(images: np.ndarray) -> np.ndarray:
    """Indices sorting images by a hash of their pixels: the same for any file order."""
    keys = [
        hashlib.blake2b(np.ascontiguousarray(im).tobytes(), digest_size=16).digest()
        for im in images
    ]
    return np.array(sorted(range(len(images)), key=keys.__getitem__), dtype=np.int64)


def check_count(images: ImageSet, flag: str, minimum: int = MIN_IMAGES) -> None:
    if len(images) < minimum:
        raise DataError(
            f"{flag} {images.root}: {len(images)} images; a gap report needs at least {minimum}"
        )


def subsample(n: int, limit: int | None, seed: int, stream: int) -> np.ndarray | None:
    """A seeded subset of `limit` indices (sorted), or None when n <= limit."""
    if limit is None or n <= limit:
        return None
    return np.sort(np.random.default_rng([seed, 13, stream]).permutation(n)[:limit])


def split_real(n: int, labels: list[str] | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded halves (reference, held-out) of the real set; stratified by class when labelled."""
    rng = np.random.default_rng([seed, 11])
    if labels is None:
        groups = [np.arange(n)]
    else:
        array = np.array(labels)
        groups = [np.flatnonzero(array == c) for c in sorted(set(labels))]
    a, b = [], []
    for group in groups:
        shuffled = group[rng.permutation(len(group))]
        half = (len(group) + 1) // 2
        a.append(shuffled[:half])
        b.append(shuffled[half:])
    return np.sort(np.concatenate(a)), np.sort(np.concatenate(b))


def pair_by_name(synthetic: ImageSet, refined: ImageSet) -> np.ndarray | None:
    """Order of refined images matching the synthetic ones by relative path (extension
    ignored), or else by file name alone when those are unique in both sets (a refined folder
    written flat, without the class subfolders).

    None when the names do not match one to one: the sets are then resampled independently.
    """

    def stem(name: str) -> str:
        return name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name

    if len(synthetic) != len(refined):
        return None
    for key in (stem, lambda name: stem(name).rsplit("/", 1)[-1]):
        where = {key(n): i for i, n in enumerate(refined.names)}
        if len(where) != len(refined) or len({key(n) for n in synthetic.names}) != len(synthetic):
            continue
        order = [where.get(key(n)) for n in synthetic.names]
        if all(i is not None for i in order):
            return np.array(order, dtype=np.int64)
    return None


def shared_classes(real: list[str] | None, others: list[list[str] | None]) -> list[str]:
    """Class names found in the real set and in every other set (at least two, else none)."""
    if real is None or any(o is None for o in others):
        return []
    common = set(real)
    for other in others:
        assert other is not None  # every None returned early above
        common &= set(other)
    return sorted(common) if len(common) >= 2 else []


def label_ids(names: list[str] | None, classes: list[str]) -> np.ndarray | None:
    """Class index per image (-1 outside `classes`), or None without classes."""
    if names is None or not classes:
        return None
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(n, -1) for n in names], dtype=np.int64)
