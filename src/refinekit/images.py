"""Image files <-> NumPy arrays: scanning folders, decoding, channel conversion, resizing.

This is the one reading path for training, refinement and gap reports, so every set is
decoded, converted and resized the same way. No JAX here.

Arrays are HxWxC (C = 1, 2, 3 or 4) in their stored integer type (uint8 or uint16);
`to_unit_float` maps them to float32 in [0, 1].
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError, ImageReadError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Refuse images whose header declares more pixels than this before decoding them
# (a decompression bomb is a tiny file that claims gigapixels).
MAX_PIXELS = 1 << 27  # 134 M pixels, e.g. 11585 x 11585

# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def scan_folder(root: Path) -> tuple[list[Path], list[Path]]:
    """All files below `root`, split into (images, others); sorted, relative to `root`.

    Symbolic links to directories are not followed (a link loop cannot hang the scan);
    links to files are listed like files.
    """
    root = Path(root)
    images, others = [], []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            rel = full.relative_to(root)
            (images if is_image_path(full) else others).append(rel)
    return images, others


def list_images(root: Path, flag: str = "folder") -> list[Path]:
    """Absolute paths of the images below `root`; a clear error if there are none."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{flag} {root}: no such folder")
    if root.is_file():
        if is_image_path(root):
            return [root]
        raise DataError(f"{flag} {root}: expected a folder of images or an image file")
    images, _ = scan_folder(root)
    if not images:
        exts = ", ".join(IMAGE_EXTENSIONS)
        raise DataError(f"{flag} {root}: no image files found (looked for {exts}, recursively)")
    return [root / p for p in images]


@dataclass(frozen=True)
class ImageInfo:
    """What a decoded file was, so refinement can write it back the same way."""

    mode: str  # Pillow mode of the file: L, LA, RGB, RGBA, I;16, P, CMYK, ...
    dtype: str  # uint8 or uint16 after decoding
    channels: int


def read_image(path: Path) -> tuple[np.ndarray, ImageInfo]:
    """Decode one image to HxWxC uint8/uint16, with what it was.

    Palette and CMYK images become RGB(A); 32-bit integer and float images become uint16
    (floats are taken as [0, 1]); only the first frame of a multi-frame file is read.
    Raises ImageReadError naming the file for anything that cannot be decoded.
    """
    import imageio.v3 as iio
    from PIL import Image

    path = Path(path)
    try:
        if path.is_dir():
            raise ImageReadError(f"{path}: is a directory, not an image")
        if path.stat().st_size == 0:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        with warnings.catch_warnings():
            # Pillow warns on large images; we apply our own limit below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as probe:
                mode = probe.mode
                width, height = probe.size
            if width * height > MAX_PIXELS:
                raise ImageReadError(
                    f"{path}: declares {width}x{height} pixels, more than the limit of "
                    f"{MAX_PIXELS} (a decompression bomb or a far too large image)"
                )
            read_mode = _decode_mode(mode)
            array = iio.imread(path, index=0, plugin="pillow", mode=read_mode)
    except ImageReadError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    array = _normalise_dtype(np.asarray(array))
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: unsupported image layout {array.shape}")
    return np.ascontiguousarray(array), ImageInfo(mode, str(array.dtype), array.shape[2])


def _decode_mode(mode: str) -> str | None:
    """The Pillow mode to decode a file of `mode` into (None keeps it)."""
    if mode in ("L", "LA", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"):
        return None
    if mode in ("1",):
        return "L"
    if mode in ("P", "PA", "RGBa", "La"):
        return "RGBA"
    return "RGB"  # CMYK, YCbCr, LAB, HSV, ...


def _normalise_dtype(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8 or array.dtype == np.uint16:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.floating):
        finite = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        return np.round(np.clip(finite, 0.0, 1.0) * 65535).astype(np.uint16)
    if np.issubdtype(array.dtype, np.integer):
        # 32-bit integer images (Pillow mode I) usually hold 16-bit data.
        return np.clip(array, 0, 65535).astype(np.uint16)
    raise ImageReadError(f"unsupported pixel type {array.dtype}")


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1]."""
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return array.astype(np.float32) / np.float32(scale)


def colour_channels(array: np.ndarray) -> np.ndarray:
    """Drop the alpha channel: 2 -> 1 (gray+alpha) and 4 -> 3 (RGBA)."""
    if array.shape[-1] in (2, 4):
        return array[..., :-1]
    return array


def convert_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC (alpha already dropped) -> HxWx`channels`, the way training converts.

    gray -> RGB repeats the channel; RGB -> gray takes BT.601 luma.
    """
    have = array.shape[-1]
    if have == channels:
        return array
    if have == 1 and channels == 3:
        return np.repeat(array, 3, axis=-1)
    if have == 3 and channels == 1:
        return (array @ _LUMA)[..., None].astype(np.float32)
    raise DataError(f"cannot convert a {have}-channel image to {channels} channels")


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of an antialiased linear (triangle) filter.

    On downscaling the triangle is widened by the scale factor, so every input pixel
    contributes (no aliasing); on upscaling it is plain linear interpolation.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale - 0.5
    taps = np.arange(in_size)
    weights = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / support)
    sums = weights.sum(axis=1, keepdims=True)
    # An output whose window lies off the image edge takes its nearest input pixel.
    nearest = np.clip(np.round(centres).astype(int), 0, in_size - 1)
    empty = sums[:, 0] == 0
    weights[empty, nearest[empty]] = 1.0
    sums[empty] = 1.0
    return (weights / sums).astype(np.float32)


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of float HxWxC to `size` = (H, W)."""
    h, w = array.shape[:2]
    if (h, w) == tuple(size):
        return array
    rows = resize_matrix(h, size[0])
    cols = resize_matrix(w, size[1])
    return np.einsum("ih,hwc,jw->ijc", rows, array.astype(np.float32), cols, optimize=True)


def random_crop(array: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random `size` crop; images smaller than `size` are first resized up to cover it."""
    h, w = array.shape[:2]
    if h < size[0] or w < size[1]:
        factor = max(size[0] / h, size[1] / w)
        array = resize(array, (max(size[0], round(h * factor)), max(size[1], round(w * factor))))
        h, w = array.shape[:2]
    top = int(rng.integers(0, h - size[0] + 1))
    left = int(rng.integers(0, w - size[1] + 1))
    return array[top : top + size[0], left : left + size[1]]


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
    """(H, W) per readable file from headers only (unreadable files are left out)."""
    from PIL import Image

    sizes = {}
    for path in paths:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as probe:
                    sizes[path] = (probe.size[1], probe.size[0])
        except Exception:  # noqa: BLE001 - reported when the file is decoded
            continue
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
        raise DataError(f"{flag} {root}: none of the {len(paths)} image files could be decoded ({first})")
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        listed = ", ".join(f"{s[0]}x{s[1]}x{s[2]}" for s in sorted(shapes)[:4])
        raise DataError(
            f"{flag} {root}: images have different sizes or channel counts ({listed}); "
            "pass --size H W to resize them (and --channels to convert)"
        )
    return LoadedSet(np.stack(arrays), kept, skipped, depth, sizes, chans)


def fingerprint(paths: Sequence[Path], root: Path) -> str:
    """A short hash of the relative names, sizes and modification times of a file set."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        rel = path.relative_to(root) if path != root else Path(path.name)
        digest.update(f"{rel.as_posix()}\0{stat.st_size}\0{int(stat.st_mtime)}\n".encode())
    return digest.hexdigest()[:16]
