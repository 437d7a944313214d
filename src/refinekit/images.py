"""Image files <-> NumPy arrays: scanning folders, decoding, channel conversion, resizing.

This is the one reading path for training, refinement and gap reports, so every set is
decoded, converted and resized the same way. No JAX here.

Arrays are HxWxC (C = 1, 2, 3 or 4) in their stored integer type (uint8 or uint16);
`to_unit_float` maps them to float32 in [0, 1].

Pillow decodes most files. It reads 16-bit colour PNG (RGB, RGBA, gray+alpha) at 8 bits, so
those go through `read_png16` here (zlib and the PNG row filters in NumPy); 16-bit colour TIFF
goes through tifffile when it is installed (else Pillow, at 8 bits).
"""

from __future__ import annotations

import importlib.util
import io
import os
import struct
import sys
import warnings
import zlib
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
    links to files are listed like files. A folder that cannot be listed (permissions) is a
    DataError naming it, not a silent hole in the set.
    """
    root = Path(root)
    images, others = [], []

    def unlistable(exc: OSError) -> None:
        raise DataError(
            f"{exc.filename}: cannot list this folder ({exc.strerror}); fix its permissions "
            "or move it out of the input"
        )

    for dirpath, dirnames, filenames in os.walk(root, onerror=unlistable, followlinks=False):
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


def _imageio():
    """imageio.v3, with its per-call search for the optional pillow_heif plugin made free.

    imageio's Pillow plugin tries `import pillow_heif` twice on every read; when the package
    is absent each failed import walks sys.path again (~0.2 ms per image, more than decoding
    a small PNG). Recording the absence once in sys.modules makes those imports fail at once,
    the same ImportError imageio expects. Nothing changes when pillow_heif is installed.
    """
    if "pillow_heif" not in sys.modules and importlib.util.find_spec("pillow_heif") is None:
        sys.modules["pillow_heif"] = None  # `import pillow_heif` now raises ImportError at once
    import imageio.v3 as iio

    return iio


def read_image(path: Path, data: bytes | None = None) -> tuple[np.ndarray, ImageInfo]:
    """Decode one image to HxWxC uint8/uint16, with what it was.

    `data`, when given, is the file's content already read (refine reads each file once, to
    hash and decode the same bytes); `path` then only names the file in errors and picks the
    TIFF route by its suffix.

    Palette and CMYK images become RGB(A); 32-bit integer images become uint16, float images
    are taken as [0, 1] and become uint16 (values outside [0, 65535] or [0, 1], NaN or inf are
    an error, not silently clipped); only the first frame of a multi-frame file is read.
    16-bit colour PNG is decoded at 16 bits (`read_png16`), and so is 16-bit colour TIFF when
    tifffile is installed.
    Raises ImageReadError naming the file for anything that cannot be decoded.
    """
    from PIL import Image

    iio = _imageio()
    path = Path(path)
    try:
        if data is None:
            if path.is_dir():
                raise ImageReadError(f"{path}: is a directory, not an image")
            if path.stat().st_size == 0:
                raise ImageReadError(f"{path}: empty file (0 bytes)")
        elif not data:
            raise ImageReadError(f"{path}: empty file (0 bytes)")
        png = png_header(path, data)
        if png is not None:
            _check_pixels(path, png.width, png.height)
        if png is not None and png.bits == 16 and png.colour_type in (2, 4, 6):
            array, mode = read_png16(path, data), {2: "RGB", 4: "LA", 6: "RGBA"}[png.colour_type]
        else:
            array, mode = _read_with_pillow(path, data, iio, Image)
    except ImageReadError:
        raise
    except Exception as exc:  # Pillow raises many types for corrupt data
        raise ImageReadError(f"{path}: cannot decode image ({type(exc).__name__}: {exc})") from exc
    array = _normalise_dtype(np.asarray(array), path)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: unsupported image layout {array.shape}")
    return np.ascontiguousarray(array), ImageInfo(mode, str(array.dtype), array.shape[2])


def _check_pixels(path: Path, width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"{path}: declares {width}x{height} pixels, more than the limit of "
            f"{MAX_PIXELS} (a decompression bomb or a far too large image)"
        )


def readable(path: Path, data: bytes | None = None):
    """What Pillow and tifffile open: `data` as an in-memory file when given, else `path`
    (a path, not an open file, so they close it themselves)."""
    return io.BytesIO(data) if data is not None else path


def _read_with_pillow(path: Path, data: bytes | None, iio, Image) -> tuple[np.ndarray, str]:
    source = path if data is None else data
    with warnings.catch_warnings():
        # Pillow warns on large images; we apply our own limit instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(readable(path, data)) as probe:
                mode, fmt = probe.mode, probe.format
                width, height = probe.size
                bits = probe.tag_v2.get(258) if fmt == "TIFF" else None
        except Image.DecompressionBombError as exc:  # over twice Pillow's own limit
            raise ImageReadError(
                f"{path}: declares more pixels than the limit of {MAX_PIXELS} ({exc})"
            ) from exc
        except Image.UnidentifiedImageError:
            if path.suffix.lower() in (".tif", ".tiff"):
                tiff = _read_tiff(path, data)  # e.g. 16-bit gray+alpha, which Pillow cannot open
                if tiff is not None:
                    return tiff
            raise
        _check_pixels(path, width, height)
        if (
            fmt == "TIFF"
            and mode in ("RGB", "RGBA", "RGBX")
            and bits
            and max(np.atleast_1d(bits)) == 16
        ):
            tiff = _read_tiff(path, data)
            if tiff is not None:
                return tiff
        array = iio.imread(source, index=0, plugin="pillow", mode=_decode_mode(mode))
    return array, mode


def _read_tiff(path: Path, data: bytes | None = None) -> tuple[np.ndarray, str] | None:
    """The first page of a TIFF through tifffile (16 bits per channel kept); None without
    tifffile or when it cannot decode the file (a compression that needs imagecodecs)."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(readable(path, data)) as tif:
            page = tif.pages[0]
            axes, shape = page.axes, page.shape
            height = shape[axes.index("Y")] if "Y" in axes else 0
            width = shape[axes.index("X")] if "X" in axes else 0
            _check_pixels(path, width, height)
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


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bits: int
    colour_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    interlace: int


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_header(path: Path, data: bytes | None = None) -> PngHeader | None:
    """The IHDR of a PNG file (or of its content `data`), or None for anything else."""
    if data is not None:
        head = data[:33]
    else:
        with open(path, "rb") as f:
            head = f.read(33)
    if len(head) < 33 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, bits, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return PngHeader(width, height, bits, colour_type, interlace)


def read_png16(path: Path, data: bytes | None = None) -> np.ndarray:
    """Decode a 16-bit colour PNG (colour type 2, 4 or 6) to HxWxC uint16.

    Chunks are CRC-checked; IDAT is inflated up to the size the header implies (no more, so a
    zlib bomb cannot blow up memory) and each row's filter is reversed: None, Sub and Up with
    NumPy, Average and Paeth byte by byte (they depend on the byte just decoded). Interlaced
    (Adam7) files are refused with ImageReadError.
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    header, idat, pos = None, [], 8
    if data[:8] != _PNG_SIGNATURE:
        raise ImageReadError(f"{path}: not a PNG file")
    while True:
        if pos + 12 > len(data):
            raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) < length or len(crc) < 4:
            raise ImageReadError(f"{path}: truncated PNG (in a {kind!r} chunk)")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageReadError(f"{path}: damaged PNG (CRC mismatch in a {kind!r} chunk)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ImageReadError(f"{path}: PNG without an IHDR chunk")
    width, height, bits, colour_type, _, _, interlace = header
    channels = {2: 3, 4: 2, 6: 4}.get(colour_type)
    if bits != 16 or channels is None:
        raise ImageReadError(f"{path}: read_png16 reads 16-bit colour PNGs only")
    if interlace:
        raise ImageReadError(
            f"{path}: interlaced (Adam7) 16-bit colour PNG is not supported; "
            "save it without interlacing"
        )
    bpp = 2 * channels
    stride = width * bpp
    expected = height * (stride + 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise ImageReadError(f"{path}: damaged PNG data ({exc})") from exc
    if len(raw) < expected:
        raise ImageReadError(f"{path}: truncated PNG data ({len(raw)} of {expected} bytes)")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    if height and rows[:, 0].max() > 4:
        raise ImageReadError(f"{path}: damaged PNG data (row filter type {rows[:, 0].max()})")
    out = np.empty((height, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, line = rows[y, 0], rows[y, 1:]
        if kind == 0:
            out[y] = line
        elif kind == 1:  # Sub: a running sum, per byte of the pixel, modulo 256
            out[y] = np.cumsum(line.reshape(width, bpp), axis=0, dtype=np.uint8).reshape(-1)
        elif kind == 2:  # Up
            out[y] = line + prior
        elif kind == 3:
            out[y] = _unfilter_average(line, prior, bpp)
        else:
            out[y] = _unfilter_paeth(line, prior, bpp)
        prior = out[y]
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _unfilter_average(line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    out, up = bytearray(line.tobytes()), prior.tobytes()
    for i in range(min(bpp, len(out))):
        out[i] = (out[i] + (up[i] >> 1)) & 0xFF
    for i in range(bpp, len(out)):
        out[i] = (out[i] + ((out[i - bpp] + up[i]) >> 1)) & 0xFF
    return np.frombuffer(bytes(out), np.uint8)


def _unfilter_paeth(line: np.ndarray, prior: np.ndarray, bpp: int) -> np.ndarray:
    out, up = bytearray(line.tobytes()), prior.tobytes()
    for i in range(min(bpp, len(out))):  # no left neighbour: the predictor is the byte above
        out[i] = (out[i] + up[i]) & 0xFF
    for i in range(bpp, len(out)):
        a, b, c = out[i - bpp], up[i], up[i - bpp]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        if pa <= pb and pa <= pc:
            out[i] = (out[i] + a) & 0xFF
        elif pb <= pc:
            out[i] = (out[i] + b) & 0xFF
        else:
            out[i] = (out[i] + c) & 0xFF
    return np.frombuffer(bytes(out), np.uint8)


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
