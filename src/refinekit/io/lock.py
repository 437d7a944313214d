"""One writer per output folder: an advisory lock on a file in OUT (refine) or RUN (train).

`FolderLock(folder, flag)` holds `fcntl.flock` on a lock file in the folder
(`RUN/.refinekit-lock`; `OUT/refinekit-manifest.lock`, beside refine's manifests) for as long
as the command writes there; a second refinekit process that wants the same folder gets a
one-line UsageError naming the folder and the holder's pid, instead of deleting the first
one's live temporary files. The kernel drops the lock when its process dies (kill -9
included), so a stale lock never blocks a resumed run, and nothing is ever written into the
file. `refine --shard K/N` processes share OUT: each takes the folder lock shared and its
shard's lock exclusively, so shards run side by side while two copies of one shard, or an
unsharded run next to shards, are refused. A folder the command cannot write at all gets no
lock (its own first write reports that). No JAX here.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from ..errors import UsageError
from .regular import open_own

LOCK_NAME = ".refinekit-lock"  # a training run folder
OUT_LOCK_NAME = "refinekit-manifest.lock"  # refine's OUT, beside its manifests

try:  # POSIX; elsewhere the lock is a no-op (refinekit's tests and users run on Linux/macOS)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def lock_names(name: str, shard: tuple[int, int] | None = None) -> tuple[str, ...]:
    """The lock files a run (or shard K of N) holds: never inputs, never copied."""
    if shard is None:
        return (name,)
    stem = name.removesuffix(".lock")
    return (name, f"{stem}.shard-{shard[0]}-of-{shard[1]}.lock")


def is_lock_name(name: str) -> bool:
    return name == LOCK_NAME or (name.startswith("refinekit-manifest") and name.endswith(".lock"))


class FolderLock:
    """`with FolderLock(out, "OUT"):` ... the only refinekit writer of `out` (see module doc).

    folder: an existing folder. flag: names it in the error ("OUT", "--out").
    shard: (K, N) for `refine --shard K/N`. name: the lock file's name.
    """

    def __init__(
        self,
        folder: Path,
        flag: str,
        shard: tuple[int, int] | None = None,
        name: str = LOCK_NAME,
    ):
        self.folder, self.flag, self.shard, self.name = Path(folder), flag, shard, name
        self._fds: list[int] = []

    def __enter__(self) -> FolderLock:
        if fcntl is None:  # pragma: no cover
            return self
        names = lock_names(self.name, self.shard)
        for name in names:  # refuse a planted link or FIFO before any lock file is created
            if os.path.lexists(self.folder / name):
                self._take(self.folder / name, shared=True, probe=True)
        try:
            for index, name in enumerate(names):
                shared = self.shard is not None and index == 0
                fd = self._take(self.folder / name, shared)
                if fd is not None:
                    self._fds.append(fd)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, shared: bool, probe: bool = False) -> int | None:
        """Open and lock `path` (None: no write access here); `probe`: only open it."""
        try:
            # Never through a link, only a regular file (a FIFO or a link planted at the lock's
            # name is refused by name: regular.open_own).
            fd = open_own(path, write=True)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return None  # nobody can write here as us: the command's own writes say so
            raise UsageError(
                f"{self.flag} {self.folder}: cannot create its lock file {path.name} "
                f"({exc.strerror})"
            ) from exc
        if probe:
            os.close(fd)
            return None
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder_pid(fd)
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
        return fd

    def release(self) -> None:
        while self._fds:
            os.close(self._fds.pop())  # closing drops the lock; the empty file stays (harmless)

    def __exit__(self, *exc) -> None:
        self.release()


def _holder_pid(fd: int) -> int | None:
    """The pid holding a flock on the file of `fd`, from /proc/locks (Linux); None elsewhere.
    Nothing is written into the lock file, so it never changes once created."""
    try:
        inode = os.fstat(fd).st_ino
        with open("/proc/locks") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) > 5 and fields[1] == "FLOCK" and fields[4].isdigit():
                    if int(fields[5].rsplit(":", 1)[-1]) == inode:
                        return int(fields[4])
    except (OSError, ValueError):
        pass
    return None
