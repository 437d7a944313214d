"""Writing images back the way they came, and writing any file without leaving a partial one.

`probe_source` reads what a source file was (format, Pillow mode, stored bit depth, ICC profile,
EXIF, dpi, JPEG subsampling, lossless WebP, TIFF compression) from its header; `encode_image`
encodes refined pixels in that same format, mode and bit depth; `atomic_write` and `atomic_copy`
put bytes on disk under a temporary name in the destination's folder, fsync them and rename them
into place, so a reader (or a resumed run) never sees half a file (`atomic_write_many` and
`atomic_copy_many` do the same for a group of files with one sync). No JAX here.

What is kept, per format (the suffix decides the format, like the input's):

- PNG: L, LA, RGB, RGBA, 16-bit gray (I;16); 16-bit gray+alpha and colour through a small
  encoder here (Pillow cannot write them). Palette (P) images are written as RGB, or RGBA when
  they have transparency. 1-bit images are written as 8-bit gray.
- TIFF: the same modes (16-bit colour through tifffile), 32-bit integer (I) and float (F) gray,
  and the source's compression when it is lossless (raw, LZW, deflate, packbits).
- JPEG: L or RGB (CMYK sources are written as RGB) at the given quality, with the source's
  chroma subsampling, progressive flag, ICC profile, EXIF and dpi.
- WebP: lossless sources stay lossless (colours under transparent pixels kept exactly); lossy
  sources are written lossy at the given quality, alpha losslessly.
- BMP: L, RGB, RGBA.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import io
import os
import re
import struct
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import RefinekitError
from .images import MAX_PIXELS, png_header, read_image, readable

FORMAT_BY_SUFFIX = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
    ".webp": "WEBP",
}

# Pillow modes each format can store at 8 bits per channel, and where the others go.
_MODES_8BIT = {
    "PNG": {"L", "LA", "RGB", "RGBA"},
    "TIFF": {"L", "LA", "RGB", "RGBA"},
    "JPEG": {"L", "RGB"},
    "BMP": {"L", "RGB", "RGBA"},
    "WEBP": {"RGB", "RGBA"},
}
_FALLBACK = {
    ("JPEG", "LA"): "L",
    ("JPEG", "RGBA"): "RGB",
    ("BMP", "LA"): "RGBA",
    ("WEBP", "L"): "RGB",
    ("WEBP", "LA"): "RGBA",
}
_LOSSLESS_TIFF = {"raw", "tiff_lzw", "tiff_adobe_deflate", "tiff_deflate", "packbits"}
_PALETTE_MODES = {"P", "PA"}
_MODE_BY_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}

# A temporary output: ".<name>.refinekit-tmp-<pid>" in the destination's folder. Hidden, and
# with a suffix no image reader or label loader takes for one of its files.
TEMP_MARK = ".refinekit-tmp-"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.refinekit-tmp-\d+$")
_CHUNK = 1 << 20


class OutputError(RefinekitError):
    """An output file could not be encoded or written."""


@dataclass(frozen=True)
class SourceMeta:
    """What a source image file was, beyond its pixels, so its output can be written the same way."""

    format: str | None = None  # Pillow's format name: PNG, JPEG, TIFF, BMP, WEBP
    mode: str = ""  # Pillow mode of the file
    bits: int | None = None  # stored bits per sample (PNG and TIFF), when known
    icc_profile: bytes | None = None
    exif: bytes | None = None
    dpi: tuple[float, float] | None = None
    jpeg_subsampling: int | None = None  # 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0
    progressive: bool = False
    webp_lossless: bool | None = None
    tiff_compression: str | None = None


def probe_source(path: Path, data: bytes | None = None) -> SourceMeta:
    """Read what `path` was from its header (no pixel decoding); defaults for what is unknown.

    `data`, when given, is the file's content already read; `path` then is only its name.
    """
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(readable(path, data)) as im:
                return _meta_of(im, path, data)
    except Exception:  # noqa: BLE001 - the decoder reports unreadable files
        return SourceMeta()


def _meta_of(im, path: Path, data: bytes | None) -> SourceMeta:
    """The SourceMeta of an opened Pillow image (`path`/`data`: its file, for what Pillow
    does not tell: a PNG's stored bit depth, a WebP's bitstream kind)."""
    from PIL import JpegImagePlugin

    fmt, mode, info = im.format, im.mode, im.info
    subsampling = JpegImagePlugin.get_sampling(im) if fmt == "JPEG" else None
    bits = None
    if fmt == "TIFF":
        per_sample = im.tag_v2.get(258)
        if per_sample:
            bits = int(max(np.atleast_1d(per_sample)))
    elif fmt == "PNG":
        header = png_header(path, data)
        bits = header.bits if header else None
    dpi = info.get("dpi")
    return SourceMeta(
        format=fmt,
        mode=mode,
        bits=bits,
        icc_profile=info.get("icc_profile") or None,
        exif=info.get("exif") or None,
        dpi=tuple(float(d) for d in dpi) if dpi else None,
        jpeg_subsampling=subsampling if subsampling in (0, 1, 2) else None,
        progressive=bool(info.get("progressive") or info.get("progression")),
        webp_lossless=_webp_is_lossless(path, data) if fmt == "WEBP" else None,
        tiff_compression=info.get("compression") if fmt == "TIFF" else None,
    )


# What one Pillow open decodes exactly as `read_image` does (which then only turns the image
# into an array): 8-bit gray, gray+alpha, RGB and RGBA in these formats.
_ONE_OPEN_FORMATS = {"PNG", "JPEG", "BMP", "WEBP"}
_ONE_OPEN_MODES = {"L", "LA", "RGB", "RGBA"}


def read_source(path: Path, data: bytes) -> tuple[np.ndarray, SourceMeta]:
    """Decode a file's content `data` and read what it was: `read_image(path, data)[0]` and
    `probe_source(path, data)`, with the same results and errors.

    refine decodes every input this way. For the common files (8-bit PNG, JPEG, BMP or WebP in
    L, LA, RGB or RGBA) it opens the file once instead of three times: on a small PNG the
    Python of each Pillow open costs more than the decoding. Everything else, and any file
    Pillow has trouble with, takes the general route (whose errors name the problem).
    """
    from PIL import Image

    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # MAX_PIXELS applies
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
                if (
                    im.format in _ONE_OPEN_FORMATS
                    and im.mode in _ONE_OPEN_MODES
                    and width * height <= MAX_PIXELS
                ):
                    meta = _meta_of(im, path, data)
                    if im.format != "PNG" or (meta.bits is not None and meta.bits <= 8):
                        pixels = np.asarray(im)
                        if pixels.dtype == np.uint8 and pixels.ndim in (2, 3):
                            return np.ascontiguousarray(pixels.reshape(height, width, -1)), meta
    except Exception:  # noqa: BLE001 - the general route below reports what is wrong
        pass
    pixels, _ = read_image(path, data)
    return pixels, probe_source(path, data)


def _webp_is_lossless(path: Path, data: bytes | None = None) -> bool | None:
    """True for a VP8L (lossless) bitstream, False for VP8 (lossy), None if neither is found."""
    with io.BytesIO(data) if data is not None else open(path, "rb") as f:
        riff = f.read(12)
        if riff[:4] != b"RIFF" or riff[8:12] != b"WEBP":
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            fourcc, size = header[:4], struct.unpack("<I", header[4:])[0]
            if fourcc == b"VP8L":
                return True
            if fourcc == b"VP8 ":
                return False
            f.seek(size + (size & 1), os.SEEK_CUR)


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
    fmt = FORMAT_BY_SUFFIX.get(suffix.lower())
    if fmt is None:
        raise OutputError(f"cannot write {suffix!r} files (known: {', '.join(FORMAT_BY_SUFFIX)})")
    if pixels.ndim != 3 or pixels.shape[-1] not in _MODE_BY_CHANNELS:
        raise OutputError(f"expected HxWxC pixels with C in 1..4, got shape {pixels.shape}")
    if pixels.dtype not in (np.uint8, np.uint16):
        raise OutputError(f"expected uint8 or uint16 pixels, got {pixels.dtype}")
    pixels = output_pixels(pixels, meta)
    channels = pixels.shape[-1]

    if pixels.dtype == np.uint16:
        if fmt == "PNG" and channels > 1:
            return encode_png16(pixels, dpi=meta.dpi)
        if fmt == "TIFF" and channels > 1:
            return _encode_tiff16(pixels, meta)
        if fmt in ("PNG", "TIFF"):
            gray = pixels[..., 0]
            if fmt == "TIFF" and meta.mode == "I":
                image = Image.fromarray(gray.astype(np.int32))
            elif fmt == "TIFF" and meta.mode == "F":
                image = Image.fromarray(gray.astype(np.float32) / np.float32(65535))
            else:
                image = Image.fromarray(np.ascontiguousarray(gray))  # mode I;16
            return _save(image, fmt, meta, jpeg_quality)
        # JPEG, BMP and WebP hold 8 bits per channel.
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)

    mode = _MODE_BY_CHANNELS[channels]
    image = Image.fromarray(np.ascontiguousarray(pixels if channels > 1 else pixels[..., 0]))
    if mode not in _MODES_8BIT[fmt]:
        image = image.convert(_FALLBACK[(fmt, mode)])
    return _save(image, fmt, meta, jpeg_quality)


def _save(image, fmt: str, meta: SourceMeta, jpeg_quality: int) -> bytes:
    options: dict = {}
    if meta.dpi:
        options["dpi"] = meta.dpi
    if meta.icc_profile and fmt in ("PNG", "JPEG", "TIFF", "WEBP"):
        options["icc_profile"] = meta.icc_profile
    if meta.exif and fmt in ("PNG", "JPEG", "WEBP"):
        options["exif"] = meta.exif
    if fmt == "PNG":
        options["compress_level"] = 6
    elif fmt == "JPEG":
        options["quality"] = jpeg_quality
        if meta.jpeg_subsampling is not None:
            options["subsampling"] = meta.jpeg_subsampling
        if meta.progressive:
            options["progressive"] = True
    elif fmt == "TIFF":
        if meta.tiff_compression in _LOSSLESS_TIFF:
            options["compression"] = meta.tiff_compression
    elif fmt == "WEBP":
        if meta.webp_lossless:
            options.update(lossless=True, exact=True, quality=80, method=4)
        else:
            options.update(quality=jpeg_quality, alpha_quality=100, exact=True, method=4)
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, **options)
    except Exception as exc:  # Pillow raises OSError, ValueError, KeyError for what it cannot write
        raise OutputError(f"cannot encode a {image.mode} image as {fmt}: {exc}") from exc
    return buffer.getvalue()


def encode_png16(pixels: np.ndarray, dpi: tuple[float, float] | None = None) -> bytes:
    """A 16-bit PNG of HxWxC uint16 `pixels` (C = 1..4), which Pillow cannot write in colour.

    Rows use the PNG "Sub" filter (byte-wise difference to the pixel on the left), computed
    with NumPy, then zlib level 6: close to what libpng gives for photographic content.
    """
    h, w, c = pixels.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    bpp = 2 * c
    filtered = raw.copy()
    filtered[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # uint8 arithmetic wraps modulo 256
    rows = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)  # filter type 1

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    parts = [
        b"\x89PNG\r\n\x1a\n",
        chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)),
    ]
    if dpi:
        ppm = [int(d / 0.0254 + 0.5) for d in dpi]
        parts.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    parts.append(chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)


def _encode_tiff16(pixels: np.ndarray, meta: SourceMeta) -> bytes:
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - tifffile ships with the test environment
        raise OutputError("writing a 16-bit colour TIFF needs the tifffile package") from exc
    photometric = "rgb" if pixels.shape[-1] in (3, 4) else "minisblack"
    extrasamples = ["unassalpha"] if pixels.shape[-1] in (2, 4) else None
    # tifffile writes deflate with the standard library alone (LZW would need imagecodecs), so
    # a compressed source gives a deflate-compressed output: lossless either way.
    compression = "zlib" if meta.tiff_compression not in (None, "raw") else None
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        pixels,
        photometric=photometric,
        planarconfig="contig",
        extrasamples=extrasamples,
        compression=compression,
    )
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# Atomic writes


def temp_path(path: Path) -> Path:
    """Where `path` is written before it is renamed into place (same folder, same filesystem)."""
    return path.with_name(f".{path.name}{TEMP_MARK}{os.getpid()}")


def temp_target(name: str) -> str | None:
    """The output name a temporary file stands for, or None if `name` is not one of ours."""
    match = _TEMP_RE.match(name)
    return match.group("name") if match else None


@dataclass(frozen=True)
class Written:
    """A file now in place: its SHA-256, size and modification time (ns)."""

    sha256: str
    size: int
    mtime_ns: int


def sync_file(fd: int) -> None:
    """Flush a file's data (and its size) to the disk: fdatasync, or fsync where it is missing."""
    getattr(os, "fdatasync", os.fsync)(fd)


def atomic_write(path: Path, data: bytes) -> Written:
    """Write `data` to `path` so that `path` is either absent, the old file, or complete.

    The bytes go to `temp_path(path)`, are fsynced, and the temporary file is renamed over
    `path` (os.replace is atomic within a filesystem). A failure removes the temporary file.
    Plain os calls, and the size and time taken from the open file (a rename keeps them): refine
    writes one small file per image, and each avoided system call shows in its throughput.
    """
    stat = _publish(Path(path), lambda fd: _write_all(fd, data))
    return Written(hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)


def atomic_copy(source: Path, path: Path) -> Written:
    """Copy `source` byte for byte to `path`, atomically (see `atomic_write`), hashing as it goes."""
    digest = hashlib.sha256()
    stat = _publish(Path(path), _copier(source, digest))
    return Written(digest.hexdigest(), stat.st_size, stat.st_mtime_ns)


def _copier(source: Path, digest):
    """fill(fd) for a copy of `source` that hashes the bytes as it writes them."""

    def fill(fd: int) -> None:
        with open(source, "rb") as src:
            while block := src.read(_CHUNK):
                digest.update(block)
                _write_all(fd, block)

    return fill


def atomic_write_many(items: list[tuple[Path, bytes]]) -> list[Written | OSError]:
    """`atomic_write` for several files with one durability sync for all of them.

    Each file is written under its temporary name, then all are synced together (`sync_all`),
    then each is renamed into place. refine writes a batch of small files at a time, and one
    sync per batch instead of one fdatasync per file saves ~0.1 ms of kernel CPU per file on
    ext4 (README, Performance). A failure is returned in its file's place and affects that file
    only (its temporary file is removed).
    """
    fills = [(Path(path), lambda fd, data=data: _write_all(fd, data)) for path, data in items]
    results = _publish_many(fills)
    return [
        result
        if isinstance(result, OSError)
        else Written(hashlib.sha256(data).hexdigest(), result.st_size, result.st_mtime_ns)
        for result, (_, data) in zip(results, items, strict=True)
    ]


def atomic_copy_many(items: list[tuple[Path, Path]]) -> list[Written | OSError]:
    """`atomic_copy` for several (source, target) pairs with one sync (see `atomic_write_many`)."""
    digests = [hashlib.sha256() for _ in items]
    jobs = [
        (Path(target), _copier(source, digest))
        for (source, target), digest in zip(items, digests, strict=True)
    ]
    results = _publish_many(jobs)
    return [
        result
        if isinstance(result, OSError)
        else Written(digest.hexdigest(), result.st_size, result.st_mtime_ns)
        for result, digest in zip(results, digests, strict=True)
    ]


def _publish_many(jobs: list[tuple[Path, object]]) -> list[os.stat_result | OSError]:
    """`_publish` for several files: fill all, sync all at once, rename all. An OSError is
    returned in its file's place; anything else (an interrupt) removes every temporary file
    still open and propagates."""
    results: list[os.stat_result | OSError | None] = [None] * len(jobs)
    opened: list[tuple[int, Path, Path, int, os.stat_result]] = []
    try:
        for index, (path, fill) in enumerate(jobs):
            temp = temp_path(path)
            try:
                fd = _create(temp)
            except OSError as exc:
                results[index] = exc
                continue
            try:
                fill(fd)
                stat = os.fstat(fd)
            except OSError as exc:
                os.close(fd)
                temp.unlink(missing_ok=True)
                results[index] = exc
                continue
            opened.append((index, path, temp, fd, stat))
        errors = sync_all([(fd, stat.st_dev) for _, _, _, fd, stat in opened])
        while opened:
            index, path, temp, fd, stat = opened.pop(0)
            try:
                os.close(fd)
                if fd in errors:
                    raise errors[fd]
                os.replace(temp, path)
                results[index] = stat
            except OSError as exc:
                temp.unlink(missing_ok=True)
                results[index] = exc
    finally:
        for _, _, temp, fd, _ in opened:  # only after an interrupt
            os.close(fd)
            temp.unlink(missing_ok=True)
    return results  # type: ignore[return-value]


def sync_all(files: list[tuple[int, int]]) -> dict[int, OSError]:
    """Make the data of several open files durable; `files` is (fd, st_dev) pairs. Returns the
    fds whose sync failed, with their errors.

    On Linux one syncfs(2) per filesystem covers them all (one journal commit and cache flush
    instead of one per file); where syncfs is missing, or fails, each file gets its own
    fdatasync, so a failure is reported for the file it concerns.
    """
    errors: dict[int, OSError] = {}
    syncfs = _syncfs()
    by_device: dict[int, list[int]] = {}
    for fd, device in files:
        by_device.setdefault(device, []).append(fd)
    for fds in by_device.values():
        if syncfs is not None and syncfs(fds[0]) == 0:
            continue
        for fd in fds:
            try:
                sync_file(fd)
            except OSError as exc:
                errors[fd] = exc
    return errors


@functools.cache
def _syncfs():
    """libc's syncfs (Linux 5.8 or later: older kernels do not report write-back errors through
    it), or None. ctypes releases the interpreter lock while it runs."""
    if not sys.platform.startswith("linux") or _kernel_version() < (5, 8):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
    return function


def _kernel_version() -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def _publish(path: Path, fill) -> os.stat_result:
    """fill(fd) a new temporary file beside `path`, sync it and rename it over `path`; on any
    failure remove the temporary file. Returns the file's stat, taken before the rename."""
    temp = temp_path(path)
    fd = _create(temp)
    try:
        try:
            fill(fd)
            sync_file(fd)
            stat = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return stat


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _create(temp: Path) -> int:
    """Open a new temporary file for writing, creating its folder only when it is missing
    (trying first costs nothing when the folder exists, which is nearly always)."""
    flags = (
        os.O_WRONLY
        | os.O_CREAT
        | os.O_TRUNC
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        return os.open(temp, flags, 0o666)
    except FileNotFoundError:
        temp.parent.mkdir(parents=True, exist_ok=True)
        return os.open(temp, flags, 0o666)


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """A file's bytes and its stat, taken from the same open file (plain os calls: see atomic_write)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        stat = os.fstat(fd)
        chunks, size = [], 0
        while chunk := os.read(fd, max(stat.st_size - size, 0) + 1):  # +1: notice a file that grew
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks), stat
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()
