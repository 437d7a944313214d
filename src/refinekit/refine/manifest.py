"""The refine manifest: `OUT/refinekit-manifest.jsonl`, one JSON object per line, per file.

A line is appended (written, flushed and fsynced) only after its output file is in place, so a
killed run leaves a manifest that agrees with the disk: every "refined" or "copied" line names a
complete file, and a file with no line is redone on the next run. Reruns append; the last line
for an input is the current one. A sharded run (`--shard K/N`) writes
`refinekit-manifest.shard-K-of-N.jsonl` instead, so concurrent shards never append to one file;
`cat OUT/refinekit-manifest*.jsonl` is the whole record.

Fields of a line (see `Record`): input, output (paths relative to IN and OUT, with "/"; output
is null for a failed file),
action ("refined", "copied" or "failed"), input_sha256, output_sha256, input_size,
input_mtime_ns, output_size, output_mtime_ns, model (the refiner's `model_id`: {"run", "step"}
or {"export", "sha256"}; null for copies), error (for "failed"), time (UTC, ISO 8601).
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

    def to_json(self) -> str:
        # ASCII JSON: a file name that is not valid UTF-8 (kept by Python as surrogates) is
        # escaped and reads back as the same name.
        # A shallow dict: asdict's recursive deep copy cost more than the JSON encoding.
        data = {name: getattr(self, name) for name in _RECORD_FIELDS}
        return json.dumps(data, separators=(",", ":"), default=str)

    @classmethod
    def from_dict(cls, data: dict) -> Record:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


_RECORD_FIELDS = tuple(f.name for f in fields(Record))


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
        try:
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise RefinekitError(
                f"{self.path}: cannot write the manifest ({exc.strerror or exc}); "
                "OUT must be a writable folder"
            ) from exc
        # A kill in the middle of a line (possible only on power loss) leaves no newline at the
        # end; start on a fresh line so the next record stays parseable.
        if self._file.tell() > 0:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    self._file.write(b"\n")

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
            raise RefinekitError(
                f"{self.path}: cannot append to the manifest ({exc.strerror or exc}); "
                "the files written so far are complete, rerun to resume"
            ) from exc

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError:
                    pass  # its flush failed: only lines whose `append` already raised are lost

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_records(path: Path) -> list[Record]:
    """Every parseable record of one manifest file, in order (a torn or foreign line is skipped)."""
    records = []
    with open(path, "rb") as f:
        for raw in f:
            try:
                data = json.loads(raw)
                if isinstance(data, dict) and data.get("action") in ACTIONS and "input" in data:
                    records.append(Record.from_dict(data))
            except (ValueError, TypeError):
                continue
    return records


def read_manifests(folder: Path) -> dict[str, list[Record]]:
    """The current record of each input in each manifest file in `folder`, by input path.

    Every manifest (unsharded and each shard's) contributes the last record it holds for an
    input, so a run can resume from any earlier run into the same folder, sharded or not.
    """
    current: dict[str, list[Record]] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return current
    for path in sorted(folder.iterdir()):
        if not (is_manifest_name(path.name) and path.is_file()):
            continue
        last: dict[str, Record] = {}
        for record in read_records(path):
            last[record.input] = record
        for name, record in last.items():
            current.setdefault(name, []).append(record)
    return current
