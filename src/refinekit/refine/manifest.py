"""The refine manifest: `OUT/refinekit-manifest.jsonl`, one JSON object per line, per file.

A line is appended (written, flushed and fsynced) only after its output file is in place, so a
killed run leaves a manifest that agrees with the disk: every "refined" or "copied" line names a
complete file, and a file with no line is redone on the next run. Reruns append; the last line
for an input is the current one. A sharded run (`--shard K/N`) writes
`refinekit-manifest.shard-K-of-N.jsonl` instead, so concurrent shards never append to one file;
`cat OUT/refinekit-manifest*.jsonl` is the whole record.

Files in OUT that no manifest records are the user's, and are never replaced without
`--overwrite` (resume.check_unrecorded). So that a killed run's last files (in place, their
lines not yet appended) do not count as the user's, the names of a group of files are
appended to a journal beside the manifest, `refinekit-manifest.pending`
(`refinekit-manifest.shard-K-of-N.pending`; one JSON string per line, no fsync), before
the group is renamed into place; a run that ends cleanly removes it.

Fields of a line (see `Record`): input, output (paths relative to IN and OUT, with "/"; output
is null for a failed file),
action ("refined", "copied" or "failed"), input_sha256, output_sha256, input_size,
input_mtime_ns, output_size, output_mtime_ns, model (the refiner's `model_id`: {"run", "step"}
or {"export", "sha256"}; null for copies), error (for "failed"), time (UTC, ISO 8601); and, only
where they apply, variant (1..K with `--variants K` above 1: which output of the input this is)
and seed (`--seed`, for a refiner with per-image draws). Each output has its own line, so an
input refined into K variants has K.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from pathlib import Path

from ..errors import RefinekitError
from ..io.atomic import sync_file
from ..io.regular import open_own

MANIFEST_NAME = "refinekit-manifest.jsonl"
ACTIONS = ("refined", "copied", "failed")


def manifest_name(shard: tuple[int, int] | None = None) -> str:
    """The manifest file name for an unsharded run, or for shard (K, N)."""
    if shard is None:
        return MANIFEST_NAME
    k, n = shard
    return f"refinekit-manifest.shard-{k}-of-{n}.jsonl"


def is_manifest_name(name: str) -> bool:
    return name.startswith("refinekit-manifest") and name.endswith(".jsonl")


def journal_path(manifest: Path) -> Path:
    """The journal of outputs about to be written beside manifest file `manifest`."""
    return manifest.with_suffix(".pending")


def is_journal_name(name: str) -> bool:
    return name.startswith("refinekit-manifest") and name.endswith(".pending")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Record:
    """One manifest line."""

    input: str
    output: str | None
    action: str
    input_sha256: str | None = None
    output_sha256: str | None = None
    input_size: int | None = None
    input_mtime_ns: int | None = None
    output_size: int | None = None
    output_mtime_ns: int | None = None
    model: dict | None = None
    error: str | None = None
    time: str = ""
    variant: int | None = None
    seed: int | None = None

    @property
    def key(self) -> str:
        """What resume looks a record up by: its output path (the input's for a failure)."""
        return self.output if self.output is not None else self.input

    def to_json(self) -> str:
        # ASCII JSON: a file name that is not valid UTF-8 (kept by Python as surrogates) is
        # escaped and reads back as the same name.
        # A shallow dict: asdict's recursive deep copy cost more than the JSON encoding.
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        for name in _OPTIONAL_FIELDS:  # written only where they apply
            if data[name] is None:
                del data[name]
        return json.dumps(data, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_RECORD_FIELDS = tuple(f.name for f in fields(Record))
_OPTIONAL_FIELDS = ("variant", "seed")


class ManifestWriter:
    """Appends records durably; safe to call from several threads.

    `append` returns once its line is written, flushed and fsynced. Concurrent appends share
    fsyncs (group commit): a thread whose line another thread's fsync already covered returns
    without one, so the manifest is not a serial bottleneck with many writer threads.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()  # guards writes and the written count
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._written = self._synced = 0
        self._journal: int | None = None  # the journal's fd, opened on the first `intend`
        self._failed = False
        try:
            # Never through a link, never a FIFO (regular.open_own): a link planted at the
            # manifest's name would make every record land in the file it points to.
            fd = open_own(self.path, append=True)
        except OSError as exc:
            raise RefinekitError(
                f"{self.path}: cannot write the manifest ({exc.strerror or exc}); "
                "OUT must be a writable folder"
            ) from exc
        self._file = os.fdopen(fd, "ab")
        # A kill in the middle of a line (possible only on power loss) leaves no newline at the
        # end; start on a fresh line so the next record stays parseable.
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            self._file.write(b"\n")

    def intend(self, outputs: list[str]) -> None:
        """Journal the OUT-relative names of files about to be renamed into place (see the
        module doc): written before the renames, no fsync (a killed process's writes stay)."""
        if not outputs:
            return
        lines = "".join(json.dumps(name) + "\n" for name in outputs).encode()
        try:
            with self._lock:
                if self._journal is None:
                    self._journal = open_own(journal_path(self.path), append=True)
                os.write(self._journal, lines)
        except OSError as exc:
            self._failed = True
            raise RefinekitError(
                f"{journal_path(self.path)}: cannot write ({exc.strerror or exc}); "
                "the files written so far are complete, rerun to resume"
            ) from exc

    def append(self, record: Record) -> None:
        self.append_many([record])

    def append_many(self, records: list[Record]) -> None:
        """Append several lines with one write and (at most) one fsync."""
        if not records:
            return
        lines = "".join(record.to_json() + "\n" for record in records).encode()
        try:
            with self._lock:
                self._file.write(lines)
                self._file.flush()
                self._written += 1
                mine = self._written
            with self._sync_lock:
                if self._synced >= mine:
                    return  # a later line's fsync covered this one
                with self._lock:
                    target = self._written
                sync_file(self._file.fileno())
                self._synced = target
        except OSError as exc:
            self._failed = True
            raise RefinekitError(
                f"{self.path}: cannot append to the manifest ({exc.strerror or exc}); "
                "the files written so far are complete, rerun to resume"
            ) from exc

    def close(self, clean: bool = False) -> None:
        """Close the manifest; `clean`: every file renamed into place was recorded (no writer
        is left and no append failed), so the journal is removed."""
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError:
                    pass  # its flush failed: only lines whose `append` already raised are lost
            if self._journal is not None:
                os.close(self._journal)
                self._journal = None
                if clean and not self._failed:
                    try:
                        journal_path(self.path).unlink(missing_ok=True)
                    except OSError:
                        pass  # kept: its names are refinekit's outputs, which is true

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, kind, *exc) -> None:
        self.close(clean=kind is None)


def read_records(path: Path) -> list[Record]:
    """Every parseable record of one manifest file, in order (a torn or foreign line is skipped).

    The file is opened without following a link and must be a regular file (a DataError names
    it otherwise)."""
    records = []
    with os.fdopen(open_own(path, cap=None), "rb") as f:
        for raw in f:
            try:
                data = json.loads(raw)
                if isinstance(data, dict) and data.get("action") in ACTIONS and "input" in data:
                    records.append(Record.from_dict(data))
            except (ValueError, TypeError):
                continue
    return records


def read_manifests(folder: Path) -> dict[str, list[Record]]:
    """The current record of each output in each manifest file in `folder`, by output path
    (`Record.key`: the input path of a failure; without variants the two are the same).

    Every manifest (unsharded and each shard's) contributes the last record it holds for an
    output, so a run can resume from any earlier run into the same folder, sharded or not.
    """
    return read_manifests_and_outputs(folder)[0]


def read_manifests_and_outputs(folder: Path) -> tuple[dict[str, list[Record]], set[str]]:
    """`read_manifests`, and every output path any record of them names: the files of OUT
    that refinekit wrote (any other file there is the user's, never replaced unasked)."""
    current: dict[str, list[Record]] = {}
    outputs: set[str] = set()
    folder = Path(folder)
    if not folder.is_dir():
        return current, outputs
    for path in sorted(folder.iterdir()):
        if is_journal_name(path.name):
            outputs.update(read_journal(path))
            continue
        if not is_manifest_name(path.name):
            continue  # a link, FIFO or folder named like a manifest is refused by read_records
        last: dict[str, Record] = {}
        for record in read_records(path):
            last[record.key] = record
            if record.output is not None:
                outputs.add(record.output)
        for name, record in last.items():
            current.setdefault(name, []).append(record)
    return current, outputs


def read_journal(path: Path) -> list[str]:
    """The output names in journal `path` (see the module doc); a torn line is skipped."""
    names = []
    with os.fdopen(open_own(path, cap=None), "rb") as f:
        for raw in f:
            try:
                name = json.loads(raw)
            except ValueError:
                continue
            if isinstance(name, str):
                names.append(name)
    return names
