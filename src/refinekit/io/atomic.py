"""Every file refinekit writes goes through here: a reader (or a resumed run) never sees half a file.

The bytes go to a temporary name in the destination's folder (`temp_path`), are made durable,
and the temporary file is renamed over the destination (os.replace is atomic within a
filesystem); a failure removes the temporary file. `atomic_write` takes bytes, `atomic_writer`
is a context manager for writers that stream into a file object (np.savez, json.dump),
`atomic_copy` copies a file byte for byte, and `atomic_write_many` / `atomic_copy_many` do the
same for a group of files with one durability sync for all of them (one syncfs per filesystem
on Linux: see `sync_all`). No JAX here.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .regular import open_regular

# A temporary output: ".<name>.refinekit-tmp-<pid>" in the destination's folder. Hidden, and
# with a suffix no image reader or label loader takes for one of its files.
TEMP_MARK = ".refinekit-tmp-"
_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.refinekit-tmp-\d+$")
CHUNK = 1 << 20  # bytes per read when copying or hashing a file

Fill = Callable[[int], None]  # writes a file's content to an open file descriptor


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

    Plain os calls, and the size and time taken from the open file (a rename keeps them): refine
    writes one small file per image, and each avoided system call shows in its throughput.
    """
    stat = _publish(Path(path), _writer(data))
    return Written(hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """`with atomic_writer(path) as f: f.write(...)`: `path` appears, complete, only when the
    block ends without an exception (then its temporary file is removed and the old file kept).
    """
    path = Path(path)
    temp = temp_path(path)
    fd = _create(temp)
    try:
        with os.fdopen(fd, "wb") as handle:  # closes fd
            yield handle
            handle.flush()
            sync_file(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _writer(data: bytes) -> Fill:
    """fill(fd) that writes `data`."""
    return lambda fd: _write_all(fd, data)


def atomic_copy(source: Path, path: Path) -> Written:
    """Copy `source` byte for byte to `path`, atomically (see `atomic_write`), hashing as it goes."""
    digest = hashlib.sha256()
    stat = _publish(Path(path), _copier(source, digest))
    return Written(digest.hexdigest(), stat.st_size, stat.st_mtime_ns)


def _copier(source: Path, digest) -> Fill:
    """fill(fd) for a copy of `source` that hashes the bytes as it writes them. Only a regular
    file is copied: a FIFO would block forever and /dev/zero never ends (regular.py); either
    raises NotRegularFile, an OSError that fails this one file."""

    def fill(fd: int) -> None:
        source_fd, _ = open_regular(source)
        with os.fdopen(source_fd, "rb") as src:
            while block := src.read(CHUNK):
                digest.update(block)
                _write_all(fd, block)

    return fill


def atomic_write_many(items: list[tuple[Path, bytes]]) -> list[Written | OSError]:
    """`atomic_write` for several files with one durability sync for all of them.

    Each file is written under its temporary name, then all are synced together (`sync_all`),
    then each is renamed into place. refine writes a batch of small files at a time, and one
    sync per batch instead of one fdatasync per file saves ~0.1 ms of kernel CPU per file on
    ext4 (docs/performance.md). A failure is returned in its file's place and affects that file
    only (its temporary file is removed).
    """
    results = _publish_many([(Path(path), _writer(data)) for path, data in items])
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


def _publish_many(jobs: list[tuple[Path, Fill]]) -> list[os.stat_result | OSError]:
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


def _publish(path: Path, fill: Fill) -> os.stat_result:
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
        | getattr(os, "O_NOFOLLOW", 0)  # a link planted under the temporary name is refused
        | getattr(os, "O_CLOEXEC", 0)
        | getattr(os, "O_BINARY", 0)
    )
    try:
        return os.open(temp, flags, 0o666)
    except FileNotFoundError:
        make_folders(temp.parent)
        return os.open(temp, flags, 0o666)


def make_folders(path: Path) -> None:
    """`path.mkdir(parents=True, exist_ok=True)` without recursion (pathlib's recurses once per
    missing level: a tree 1,000 folders deep raised RecursionError)."""
    missing = []
    path = Path(path)
    while not os.path.isdir(path):
        missing.append(path)
        if path.parent == path:
            break
        path = path.parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            if not os.path.isdir(folder):
                raise
