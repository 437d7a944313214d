"""One writer per output folder: an advisory lock on a file in OUT (refine) or RUN (train).

`FolderLock(folder, flag)` holds `fcntl.flock` on `folder/.refinekit-lock` for as long as the
command writes there; a second refinekit process that wants the same folder gets a one-line
UsageError naming the folder and the holder's pid, instead of deleting the first one's live
temporary files. The kernel drops the lock when its process dies (kill -9 included), so a
stale lock never blocks a resumed run. `refine --shard K/N` processes share OUT: each takes
the folder lock shared and its shard's lock exclusively, so shards run side by side while two
copies of one shard, or an unsharded run next to shards, are refused. No JAX here.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from .errors import UsageError

LOCK_NAME = ".refinekit-lock"

try:  # POSIX; elsewhere the lock is a no-op (refinekit's tests and users run on Linux/macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_names(shard: tuple[int, int] | None = None) -> tuple[str, ...]:
    """The lock files a run (or shard) holds: never inputs, never copied into an output."""
    return (LOCK_NAME,) if shard is None else (LOCK_NAME, f"{LOCK_NAME}-{shard[0]}-of-{shard[1]}")


def is_lock_name(name: str) -> bool:
    return name == LOCK_NAME or name.startswith(LOCK_NAME + "-")


class FolderLock:
    """`with FolderLock(out, "OUT"):` ... the only refinekit writer of `out` (see module doc).

    folder: created if missing. flag: names the folder in the error ("OUT", "--out").
    shard: (K, N) for `refine --shard K/N`.
    """

    def __init__(self, folder: Path, flag: str, shard: tuple[int, int] | None = None):
        self.folder, self.flag, self.shard = Path(folder), flag, shard
        self._fds: list[tuple[int, bool]] = []

    def __enter__(self) -> FolderLock:
        if fcntl is None:  # pragma: no cover
            return self
        names = lock_names(self.shard)
        try:
            for index, name in enumerate(names):
                shared = self.shard is not None and index == 0
                self._fds.append((self._take(self.folder / name, shared), shared))
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, shared: bool) -> int:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        except OSError as exc:
            raise UsageError(
                f"{self.flag} {self.folder}: cannot create its lock file {path.name} "
                f"({exc.strerror}); make the folder writable"
            ) from exc
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(
                    f"{self.flag} {self.folder}: cannot lock it ({exc.strerror})"
                ) from exc
            who = f" (pid {holder})" if holder else ""
            what = "this shard of it" if self.shard is not None and not shared else "it"
            raise UsageError(
                f"{self.flag} {self.folder}: another refinekit process{who} is writing to "
                f"{what}; wait for it to finish, or choose another folder"
            ) from None
        if not shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def release(self) -> None:
        while self._fds:
            fd, shared = self._fds.pop()
            if not shared:  # no stale pid for the next one to report
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            os.close(fd)  # closing drops the lock; the empty file stays (harmless)

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        pid = int(text) if text.isdigit() else None
        if pid is not None:
            os.kill(pid, 0)  # alive? (a kill -9 leaves its pid behind)
        return pid
    except (OSError, ValueError):
        return None
