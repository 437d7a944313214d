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

import errno
import json
import os
import stat
from pathlib import Path

from ..errors import DataError, ImageReadError

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


# ---------------------------------------------------------------------------------------------
# refinekit's own files: the run folder (config.json, metrics.jsonl, scores.jsonl, best.json,
# validation.json), OUT's manifests, the lock files. They are opened without following a
# symbolic link (O_NOFOLLOW) and only when they are regular files: a link planted at one of
# these names could otherwise make refinekit append to (or read) a file elsewhere, an input
# among them, and a FIFO would block the command forever. Anything else is a one-line
# DataError (exit 2) naming the file. Their content is validated on read the same way.

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _own_refusal(path: Path, what: str) -> DataError:
    return DataError(
        f"{path}: {what}; refinekit keeps its own files (run folder, OUT's manifests and locks) "
        "as regular files and never follows a link there: remove it, or choose another folder"
    )


def _describe_own(path: Path) -> str:
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "cannot be opened"
    if stat.S_ISLNK(mode):
        return f"is a symbolic link (to {os.readlink(path)}), not a regular file"
    return f"is {kind_of(mode)}, not a regular file"


def open_own(
    path: Path, *, append: bool = False, write: bool = False, cap: int | None = TEXT_BYTES_CAP
) -> int:
    """A file descriptor of refinekit's own file `path`, never through a link, never blocking.

    append: open for reading and appending, creating the file; write: open for reading and
    writing, creating it (a lock file). Otherwise read only (a missing file raises FileNotFoundError),
    refusing a file over `cap` bytes (None: any size, for files read as a stream).
    Raises DataError naming the file when it is a link, FIFO, device, socket or folder; other
    OSErrors (permissions) as they come.
    """
    path = Path(path)
    flags = os.O_NONBLOCK | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    if append:
        flags |= os.O_RDWR | os.O_APPEND | os.O_CREAT
    elif write:
        flags |= os.O_RDWR | os.O_CREAT
    else:
        flags |= os.O_RDONLY
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        # ELOOP: a link (O_NOFOLLOW); ENXIO: a socket; EISDIR: a folder opened to write.
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
            raise _own_refusal(path, _describe_own(path)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _own_refusal(path, f"is {kind_of(info.st_mode)}, not a regular file")
        if not append and not write and cap is not None and info.st_size > cap:
            raise DataError(f"{path}: {info.st_size} bytes, more than the limit of {cap} bytes")
        # Back to blocking reads and writes: a regular file never waits anyway.
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_own(path: Path) -> bool:
    """False when nothing is at `path`; True when a regular file is (not a link to one);
    otherwise a DataError naming it. A stat, no open: checks a whole run folder before any work."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False  # (below a file: its own check says so)
    if not stat.S_ISREG(mode):
        raise _own_refusal(Path(path), _describe_own(Path(path)))
    return True


def own_exists(path: Path) -> bool:
    """True when something is at `path` (a link too, even a dangling one): it is then opened
    with `open_own`, which refuses what is not a regular file."""
    return os.path.lexists(path)


def read_own_bytes(path: Path, cap: int = TEXT_BYTES_CAP) -> bytes:
    """The bytes of refinekit's own file `path` (see `open_own`); at most `cap` of them."""
    path = Path(path)
    fd = open_own(path, cap=cap)
    try:
        chunks, size = [], 0
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise DataError(f"{path}: more than the limit of {cap} bytes for this file")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _damaged(path: Path, what: str) -> DataError:
    return DataError(
        f"{path}: {what}; the file is damaged: restore it, or remove it (or the damaged line)"
    )


def read_own_text(path: Path, cap: int = TEXT_BYTES_CAP) -> str:
    """refinekit's own text file `path` (UTF-8), validated: a DataError names it otherwise."""
    data = read_own_bytes(path, cap)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _damaged(
            Path(path), f"line {line} is not UTF-8 text (byte {data[exc.start]:#04x})"
        ) from None


def read_own_json(path: Path, cap: int = TEXT_BYTES_CAP) -> dict:
    """refinekit's own JSON file `path`, which must hold one JSON object (DataError otherwise)."""
    text = read_own_text(path, cap)
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise _damaged(Path(path), f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _damaged(Path(path), f"holds a JSON {json_kind(data)}, expected an object")
    return data


def read_own_jsonl(path: Path, cap: int = 1 << 30) -> list[dict]:
    """The JSON-object lines of refinekit's own JSONL file `path` (metrics.jsonl, scores.jsonl).

    A line that is not a JSON object (one cut by a kill) is skipped; bytes that are not UTF-8
    are a DataError naming the file and the line (refinekit writes these files as ASCII)."""
    records = []
    for line in read_own_text(path, cap).splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def json_kind(value: object) -> str:
    """What a parsed JSON value is, in JSON's own words ("list", "string", ...)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__
