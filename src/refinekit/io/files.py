"""Files and folders: which files are images, scanning a folder, reading and hashing a file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from ..errors import DataError
from .atomic import CHUNK
from .formats import IMAGE_EXTENSIONS
from .regular import IMAGE_BYTES_CAP, open_regular, read_regular


def is_image_path(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def walk(
    root: Path, onerror: Callable[[OSError], None] | None = None
) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(root, onerror=onerror, followlinks=False)` (top-down: the caller may sort or
    prune `dirnames` in place), without recursion: Python's own os.walk recurses once per level
    (before 3.12), so a tree 1,000 folders deep raised RecursionError. Every folder walk of
    refinekit goes through here. Links to folders are listed in `dirnames`, never entered."""
    stack = [os.fspath(root)]
    while stack:
        top = stack.pop()
        try:
            with os.scandir(top) as listing:
                entries = list(listing)
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            continue
        dirnames: list[str] = []
        filenames: list[str] = []
        linked: set[str] = set()
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirnames if is_dir else filenames).append(entry.name)
            if is_dir and entry.is_symlink():
                linked.add(entry.name)
        yield top, dirnames, filenames
        # Depth first, in the (possibly re-ordered) order of dirnames, like os.walk.
        stack.extend(os.path.join(top, name) for name in reversed(dirnames) if name not in linked)


def scan_folder(root: Path) -> tuple[list[Path], list[Path]]:
    """All files below `root`, split into (images, others); sorted, relative to `root`.

    Symbolic links to directories are not followed (a link loop cannot hang the scan);
    links to files are listed like files. A folder that cannot be listed (permissions) is a
    DataError naming it, not a silent hole in the set.
    """
    root = Path(root)
    images: list[Path] = []
    others: list[Path] = []

    def unlistable(exc: OSError) -> None:
        raise DataError(
            f"{exc.filename}: cannot list this folder ({exc.strerror}); fix its permissions "
            "or move it out of the input"
        )

    for dirpath, dirnames, filenames in walk(root, onerror=unlistable):
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


def fingerprint(paths: Sequence[Path], root: Path) -> str:
    """A short hash of the relative names, sizes and modification times of a file set."""
    digest = hashlib.sha256()
    for path in paths:
        stat = path.stat()
        rel = path.relative_to(root) if path != root else Path(path.name)
        line = f"{rel.as_posix()}\0{stat.st_size}\0{int(stat.st_mtime)}\n"
        # surrogateescape: a file name that is not UTF-8 (bytes kept as lone surrogates by
        # Python) hashes by its bytes instead of failing; UTF-8 names hash as before.
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:16]


def read_file(path: Path) -> tuple[bytes, os.stat_result]:
    """A regular file's bytes and its stat, taken from the same open file (plain os calls:
    refine reads one small file per image, and each avoided system call shows in its
    throughput). A FIFO, device or socket, or a file over the image size cap, raises
    NotRegularFile naming it, without blocking or reading (regular.py)."""
    return read_regular(path, IMAGE_BYTES_CAP)


def file_sha256(path: Path) -> str:
    """SHA-256 of a regular file's bytes, read in 1 MiB blocks (NotRegularFile otherwise)."""
    digest = hashlib.sha256()
    fd, _ = open_regular(path)
    with os.fdopen(fd, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()
