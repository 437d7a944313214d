"""Only regular files are read: the one way refinekit opens a file it did not write.

A FIFO blocks `open()` until a writer comes (forever, in a folder of images), a character
device such as /dev/zero never ends, and a socket cannot be read at all. `open_regular` opens
without blocking (O_NONBLOCK), follows a symbolic link to its target, and keeps the file only
when `fstat` of the open file says it is a regular file: the check and the read concern the
same file, whatever is renamed meanwhile. `read_regular` also checks the size against a cap
before reading a byte, and reads at most cap + 1 bytes, so a file that grows while it is read
cannot exhaust memory either. A refused file raises `NotRegularFile`, which names it, so
callers skip it (train, gap-report) or record it as failed (refine) like an undecodable file.
No JAX here.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import ImageReadError

# Whole-file reads into memory: images (the largest image refinekit decodes, 2^27 pixels of
# 16-bit RGBA, is 1 GiB uncompressed), config and JSON files, exported refiners.
IMAGE_BYTES_CAP = 1 << 30
TEXT_BYTES_CAP = 16 << 20
EXPORT_BYTES_CAP = 1 << 30

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(ImageReadError, OSError):
    """A path that is not a regular file (FIFO, device, socket, folder), or is over the cap.

    An ImageReadError, so image readers skip or fail the file like an undecodable one, and an
    OSError, so file copies fail that one file like any unreadable one. Its message names
    the file."""

    def __init__(self, message: str):
        Exception.__init__(self, message)

    def __str__(self) -> str:
        return str(self.args[0])


def kind_of(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _refusal(path: Path, mode: int) -> NotRegularFile:
    via = ""
    if os.path.islink(path):
        via = f" (a symbolic link to {os.path.realpath(path)})"
    return NotRegularFile(
        f"{path}: is {kind_of(mode)}{via}, not a regular file; only regular files are read"
    )


def open_regular(path: Path) -> tuple[int, os.stat_result]:
    """Open `path` for reading without blocking; (fd, stat) of a regular file, or raise.

    Raises NotRegularFile for anything else (the fd is closed), OSError when it cannot be
    opened (missing, permissions, a link loop).
    """
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _refusal(path, info.st_mode)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def check_size(path: Path, size: int, cap: int) -> None:
    if size > cap:
        raise NotRegularFile(
            f"{path}: {size} bytes, more than the limit of {cap} bytes for a file read whole"
        )


def read_regular(path: Path, cap: int = IMAGE_BYTES_CAP) -> tuple[bytes, os.stat_result]:
    """The bytes of regular file `path` and its stat (from the same open file).

    Refuses (NotRegularFile) a FIFO, device, socket or folder, and a file over `cap` bytes,
    before reading anything; a file that grows past `cap` while it is read is refused too.
    """
    path = Path(path)
    fd, info = open_regular(path)
    try:
        check_size(path, info.st_size, cap)
        chunks, size = [], 0
        while chunk := os.read(fd, max(info.st_size - size, 0) + 1):  # +1: notice growth
            chunks.append(chunk)
            size += len(chunk)
            check_size(path, size, cap)
        return b"".join(chunks), info
    finally:
        os.close(fd)


def read_text(path: Path, cap: int = TEXT_BYTES_CAP) -> str:
    """A regular text file's content (UTF-8); raises NotRegularFile, OSError, UnicodeDecodeError."""
    return read_regular(path, cap)[0].decode("utf-8")


def is_regular(path: Path) -> bool:
    """True when `path` (its link target) is a regular file; never blocks (a stat, no open)."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False
