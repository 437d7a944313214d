"""Refine a folder of synthetic images into a mirror folder, keeping everything else as it was.

    plan = plan_refine("syn/", "out/", shard=None)   # check the paths, list the files
    summary = run_refine(plan, refiner)              # refine, copy, write the manifest
    # or both at once: refine_folder("syn/", "out/", refiner)

OUT gets the same relative paths and file names as IN; each image keeps its format, width and
height (the refiner is fully convolutional and runs at native resolution), Pillow mode and bit
depth, and alpha is carried through untouched; every other file is copied byte for byte. IN is
never written. Each output goes to a temporary name in its folder and is renamed into place,
and `OUT/refinekit-manifest.jsonl` (see `refinekit.manifest`) gets its line once the batch it
was written with is in place (one append and one sync per batch), so a killed
run resumes where it stopped: a file is complete when its manifest record still matches both the
input and the output on disk.

The work runs as a pipeline: a thread pool decodes images ahead of the device, images are
grouped by shape into batches of the refiner's batch size (each shape compiles once), and a
second pool encodes and writes results while the device refines the next batch. Tasks are
chunks and batches, not single files: on a small machine the thread hand-offs per file cost
more CPU than decoding a small PNG, and that CPU is taken from the refiner.

Channel conversion, when an image's colour channels differ from the model's (as in training,
`images.convert_channels`), and back:
- gray image, RGB model: the model sees the gray repeated; the output is the BT.601 luma of the
  refined RGB.
- RGB image, gray model: the model sees the BT.601 luma; the refined luma replaces the image's
  luma and its chroma (Cb, Cr) is kept, which is the same as adding the change in luma to R, G
  and B (then clipping to [0, 1]).

No JAX here: the refiner is any callable with the attributes of `inference.Refiner`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ThreadPoolExecutor, wait
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import DataError, RefinekitError, UsageError
from .images import (
    IMAGE_EXTENSIONS,
    colour_channels,
    convert_channels,
    is_image_path,
    scan_folder,
    to_unit_float,
)
from .manifest import (
    ManifestWriter,
    Record,
    is_manifest_name,
    manifest_name,
    now,
    read_manifests,
)
from .outputs import (
    OutputError,
    SourceMeta,
    atomic_copy_many,
    atomic_write_many,
    encode_image,
    file_sha256,
    read_file,
    read_source,
    temp_target,
)


class RefinerLike(Protocol):
    """What refine needs of a refiner (`inference.Refiner` has it)."""

    channels: int
    batch_size: int
    model_id: dict

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------------------------------
# Planning: paths and the file list


@dataclass(frozen=True)
class RefinePlan:
    """What one refine run covers: its folders and the files of its shard (relative, "/"-joined)."""

    input: Path
    root: Path  # the folder relative paths start from: IN, or the folder of a single IN file
    output: Path
    images: tuple[str, ...]
    others: tuple[str, ...]
    ignored: tuple[str, ...]  # files of IN never copied: an earlier run's manifests, temporaries
    shard: tuple[int, int] | None = None
    all_images: int = 0  # images in IN, over all shards

    @property
    def manifest_path(self) -> Path:
        return self.output / manifest_name(self.shard)


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N), with 1 <= K <= N."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise UsageError(
            f"--shard {text!r}: expected K/N, e.g. 1/4 for the first of 4 shards"
        ) from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(
            f"--shard {text!r}: need 1 <= K <= N (shards are numbered from 1; "
            "for a 0-based array index I use $((I+1))/N)"
        )
    return k, n


def shard_of(relative: str, n: int) -> int:
    """The shard (1..n) a file belongs to: a stable hash of its relative path.

    A hash, not a position in the listing, so adding or removing files never moves another file
    to a different shard, and every machine agrees without coordination.
    """
    digest = hashlib.sha256(relative.encode("utf-8", "surrogateescape")).digest()
    return 1 + int.from_bytes(digest[:8], "big") % n


def check_paths(input: Path, output: Path) -> None:
    """Refuse IN/OUT pairs that could write into the input or mix outputs with inputs."""
    input, output = Path(input), Path(output)
    if not input.exists():
        raise DataError(f"IN {input}: no such file or folder")
    if output.exists() and not output.is_dir():
        raise UsageError(
            f"OUT {output}: exists and is not a folder (OUT is the folder to write to)"
        )
    in_real, out_real = input.resolve(), output.resolve()
    same = out_real == in_real or (output.exists() and os.path.samefile(output, input))
    if input.is_file():
        if not is_image_path(input):
            raise UsageError(
                f"IN {input}: not an image file ({', '.join(IMAGE_EXTENSIONS)}); "
                "IN is a folder or one image file"
            )
        holder = input.parent
        if out_real == in_real.parent or (output.exists() and os.path.samefile(output, holder)):
            raise UsageError(
                f"OUT {output} is the folder that holds IN {input}: the refined image would "
                "replace the input; choose another folder"
            )
        if not output.exists() and is_image_path(output):
            raise UsageError(
                f"OUT {output}: OUT is a folder (the refined image is written as "
                f"OUT/{input.name}); give a folder name, not an image file name"
            )
        return
    if same:
        raise UsageError(
            f"OUT {output} is the same folder as IN: refine never writes into its input; "
            "choose another folder"
        )
    if out_real.is_relative_to(in_real):
        raise UsageError(
            f"OUT {output} is inside IN {input}: outputs would be mixed into the input tree "
            "(and read as inputs on the next run); choose a folder outside IN"
        )
    if in_real.is_relative_to(out_real):
        raise UsageError(
            f"IN {input} is inside OUT {output}: outputs could overwrite inputs; "
            "choose an OUT folder that does not contain IN"
        )


def _ours(relative: str) -> bool:
    """Files an earlier refine run left in a folder: never inputs."""
    name = relative.rsplit("/", 1)[-1]
    return temp_target(name) is not None or ("/" not in relative and is_manifest_name(name))


def plan_refine(input: Path, output: Path, *, shard: tuple[int, int] | None = None) -> RefinePlan:
    """Check IN and OUT and list the files this run (or shard) covers; writes nothing.

    Raises UsageError/DataError (exit 2) for refused folders, or a folder with no images.
    """
    input, output = Path(input), Path(output)
    check_paths(input, output)
    if input.is_file():
        root, images, others = input.parent, [input.name], []
    else:
        root = input
        image_paths, other_paths = scan_folder(input)
        images = [p.as_posix() for p in image_paths]
        others = [p.as_posix() for p in other_paths]
        if not images:
            raise DataError(
                f"IN {input}: no image files found (looked for {', '.join(IMAGE_EXTENSIONS)}, "
                "recursively)"
            )
    ignored = tuple(p for p in images + others if _ours(p))
    images = [p for p in images if not _ours(p)]
    others = [p for p in others if not _ours(p)]
    all_images = len(images)
    if shard is not None:
        k, n = shard
        images = [p for p in images if shard_of(p, n) == k]
        others = [p for p in others if shard_of(p, n) == k]
        ignored = tuple(p for p in ignored if shard_of(p, n) == k)
    return RefinePlan(input, root, output, tuple(images), tuple(others), ignored, shard, all_images)


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class RefineProgress:
    """A snapshot after each finished file (and once before the first, with record None)."""

    images_total: int  # images this run refines (after resume skips)
    others_total: int  # other files this run copies
    refined: int
    copied: int
    skipped: int
    failed: int
    elapsed_s: float
    record: Record | None = None

    @property
    def images_per_s(self) -> float:
        return self.refined / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class RefineSummary:
    """What a run did. `failures` holds "relative/path: reason" per failed file."""

    output: Path
    manifest: Path
    refined: int
    copied: int
    skipped: int  # complete from an earlier run (resumed)
    failed: int
    not_copied: int  # other files left out (--no-copy-other) and an earlier run's own files
    cleaned: int  # temporary files of a killed run removed
    elapsed_s: float
    images_per_s: float
    stopped: bool = False  # fail_fast stopped the run at its first failure
    interrupted: bool = False  # `should_stop` stopped the run (files in flight were finished)
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    model: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output"], data["manifest"] = str(self.output), str(self.manifest)
        data["failures"], data["notes"] = list(self.failures), list(self.notes)
        return data


# ---------------------------------------------------------------------------------------------
# Pixels: model input and back


def model_input(pixels: np.ndarray, channels: int) -> np.ndarray:
    """Decoded HxWxC uint8/uint16 -> float32 HxWx`channels` in [0, 1], as training converts."""
    return convert_channels(colour_channels(to_unit_float(pixels)), channels)


def restore_pixels(refined: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Refined float HxWxCm in [0, 1] + the decoded original -> an array like the original.

    The result has the original's channels (colour converted back as the module docstring
    says), its alpha channel unchanged, and its dtype, quantised with rounding.
    """
    colour = colour_channels(to_unit_float(original))
    refined = np.asarray(refined, np.float32)
    have, got = colour.shape[-1], refined.shape[-1]
    if got == have:
        out = refined
    elif have == 1 and got == 3:
        out = convert_channels(refined, 1)
    elif have == 3 and got == 1:
        luma = convert_channels(colour, 1)
        out = colour + (refined - luma)
    else:
        raise OutputError(f"cannot map {got} refined channels back to a {have}-channel image")
    scale = 65535.0 if original.dtype == np.uint16 else 255.0
    out = np.round(np.clip(out, 0.0, 1.0) * scale).astype(original.dtype)
    if original.shape[-1] in (2, 4):
        out = np.concatenate([out, original[..., -1:]], axis=-1)
    return out


def same_model(a: dict | None, b: dict | None) -> bool:
    """Two model ids name the same weights (an export by its hash, a run by path and step)."""
    if not a or not b:
        return False
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return a == b


def describe_model(model: dict | None) -> str:
    if not model:
        return "an unknown model"
    if "run" in model:
        return f"run {model['run']} step {model.get('step')}"
    if "export" in model:
        return f"export {model['export']} (sha256 {str(model.get('sha256', ''))[:12]})"
    return str(model)


# ---------------------------------------------------------------------------------------------
# Running


@dataclass
class _Decoded:
    relative: str
    input_sha256: str | None = None
    input_size: int | None = None
    input_mtime_ns: int | None = None
    pixels: np.ndarray | None = None
    meta: SourceMeta | None = None
    model_in: np.ndarray | None = None
    error: str | None = None


class _Window:
    """At most `limit` tasks in flight on `pool`; each finished task's records go to `done`,
    one by one, in this thread."""

    def __init__(self, pool: ThreadPoolExecutor, limit: int, done: Callable[[Record], None]):
        self.pool, self.limit, self.done = pool, max(1, limit), done
        self.pending: set[Future] = set()

    def submit(self, fn, *args) -> None:
        while len(self.pending) >= self.limit:
            self._wait()
        self.pending.add(self.pool.submit(fn, *args))

    def poll(self) -> None:
        self._collect([f for f in self.pending if f.done()])

    def drain(self) -> None:
        while self.pending:
            self._wait()

    def cancel(self) -> None:
        for future in self.pending:
            future.cancel()

    def _wait(self) -> None:
        finished, _ = wait(self.pending, return_when=FIRST_COMPLETED)
        self._collect(finished)

    def _collect(self, finished) -> None:
        for future in finished:
            self.pending.discard(future)
            for record in future.result():
                self.done(record)


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, ahead: int) -> Iterator:
    """fn(item) for each item, in order, computed up to `ahead` items in advance on `pool`."""
    it = iter(items)
    queue: deque[Future] = deque(pool.submit(fn, x) for _, x in zip(range(ahead), it, strict=False))
    try:
        while queue:
            future = queue.popleft()
            for x in it:
                queue.append(pool.submit(fn, x))
                break
            yield future.result()
    finally:
        for future in queue:
            future.cancel()


def _short_error(exc: BaseException, path: Path) -> str:
    """The message without a leading "<path>: " (the manifest and the report name the file)."""
    message = str(exc)
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
        resolved = path
    for prefix in (f"{path}: ", f"{resolved}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return message


def _complete(records: list[Record] | None, source: Path, target: Path) -> Record | None:
    """The earlier record that still describes `target` made from `source` as they are now."""
    if not records:
        return None
    try:
        src, dst = source.stat(), target.stat()
    except OSError:
        return None
    hashes: dict[Path, str] = {}

    def matches(path: Path, mtime_ns: int, recorded_mtime: int | None, sha: str | None) -> bool:
        if recorded_mtime == mtime_ns:
            return True
        if not sha:  # a touched file: trust its content hash, not its timestamp
            return False
        if path not in hashes:
            hashes[path] = file_sha256(path)
        return hashes[path] == sha

    for record in reversed(records):
        if record.action not in ("refined", "copied"):
            continue
        if record.input_size != src.st_size or record.output_size != dst.st_size:
            continue
        if matches(source, src.st_mtime_ns, record.input_mtime_ns, record.input_sha256) and matches(
            target, dst.st_mtime_ns, record.output_mtime_ns, record.output_sha256
        ):
            return record
    return None


def _remove_temp_files(plan: RefinePlan) -> int:
    """Delete temporary outputs a killed run left in OUT (only this shard's, when sharded)."""
    removed = 0
    if not plan.output.is_dir():
        return 0
    for dirpath, dirnames, filenames in os.walk(plan.output):
        dirnames.sort()
        for name in filenames:
            target = temp_target(name)
            if target is None:
                continue
            folder = Path(dirpath).relative_to(plan.output)
            relative = (folder / target).as_posix()
            if plan.shard is not None and shard_of(relative, plan.shard[1]) != plan.shard[0]:
                continue  # another shard's, maybe being written right now
            try:
                Path(dirpath, name).unlink(missing_ok=True)
            except OSError:
                continue  # a read-only OUT: the manifest cannot be opened either, and says so
            removed += 1
    return removed


class _Runner:
    def __init__(
        self,
        plan: RefinePlan,
        refiner: RefinerLike,
        manifest: ManifestWriter,
        *,
        jpeg_quality: int,
        fail_fast: bool,
        on_progress: Callable[[RefineProgress], None] | None,
        totals: tuple[int, int],
        skipped: int,
        should_stop: Callable[[], bool] | None = None,
        chunk: int = 1,
    ):
        self.plan, self.refiner, self.manifest = plan, refiner, manifest
        self.chunk = chunk  # files per reading, writing or copying task
        self.model = dict(refiner.model_id)
        self.channels = int(refiner.channels)
        self.jpeg_quality, self.fail_fast, self.on_progress = jpeg_quality, fail_fast, on_progress
        self.totals, self.skipped = totals, skipped
        self.counts = {"refined": 0, "copied": 0, "failed": 0}
        self.failures: list[str] = []
        self.notes: set[str] = set()
        self.stop = False  # fail_fast: stopped at a failure
        self.interrupted = False  # should_stop() said so
        self.should_stop = should_stop
        self.in_flight = None  # the batch the refiner is working on (see refine_batch)
        self.start = time.perf_counter()

    def halted(self) -> bool:
        """True once no new file should be started (in-flight ones are still finished)."""
        if not self.interrupted and self.should_stop is not None and self.should_stop():
            self.interrupted = True
        return self.stop or self.interrupted

    # -- bookkeeping (caller's thread) --

    def finish(self, record: Record) -> None:
        self.counts[record.action] += 1
        if record.action == "failed":
            self.failures.append(f"{record.input}: {record.error}")
            if self.fail_fast:
                self.stop = True
        self.report(record)

    def report(self, record: Record | None) -> None:
        if self.on_progress is not None:
            self.on_progress(
                RefineProgress(
                    self.totals[0],
                    self.totals[1],
                    self.counts["refined"],
                    self.counts["copied"],
                    self.skipped,
                    self.counts["failed"],
                    time.perf_counter() - self.start,
                    record,
                )
            )

    def fail(self, relative: str, error: str, item: _Decoded | None = None) -> Record:
        """Record a failure now (the main thread's decode failures and refiner errors)."""
        record = self._failure(relative, error, item)
        self.manifest.append(record)
        return record

    def _failure(self, relative: str, error: str, item: _Decoded | None = None) -> Record:
        return Record(
            input=relative,
            output=None,
            action="failed",
            input_sha256=item.input_sha256 if item else None,
            input_size=item.input_size if item else None,
            input_mtime_ns=item.input_mtime_ns if item else None,
            error=error,
            time=now(),
        )

    # -- workers: one task per batch of files, so that thread hand-offs are per batch --

    def copy_files(self, relatives: list[str]) -> list[Record]:
        records: list[Record | None] = [None] * len(relatives)
        jobs, stats = [], []  # files that exist: copied together, with one sync
        for position, relative in enumerate(relatives):
            source = self.plan.root / relative
            try:
                stats.append((position, relative, source.stat()))
            except OSError as exc:
                records[position] = self._failure(relative, _short_error(exc, source))
                continue
            jobs.append((source, self.plan.output / relative))
        for (position, relative, stat), (source, _), written in zip(
            stats, jobs, atomic_copy_many(jobs), strict=True
        ):
            if isinstance(written, OSError):
                records[position] = self._failure(relative, _short_error(written, source))
            else:
                records[position] = self._record(
                    relative,
                    "copied",
                    written,
                    written.sha256,
                    stat.st_size,
                    stat.st_mtime_ns,
                    None,
                )
        self.manifest.append_many(records)  # after the files are in place, never before
        return records

    def decode_files(self, relatives: list[str]) -> list[_Decoded]:
        return [self.decode(relative) for relative in relatives]

    def write_batch(self, items: list[_Decoded], refined: np.ndarray) -> list[Record]:
        """Encode a batch, write its files with one sync for all (outputs.atomic_write_many),
        then append their manifest lines."""
        records: list[Record | None] = [None] * len(items)
        encoded = []  # (position, item, target, bytes)
        for position, (item, out) in enumerate(zip(items, refined, strict=True)):
            target = self.plan.output / item.relative
            try:
                encoded.append((position, item, target, self._encode(item, out, target)))
            except (RefinekitError, OSError, ValueError) as exc:
                records[position] = self._failure(item.relative, _short_error(exc, target), item)
        results = atomic_write_many([(target, data) for _, _, target, data in encoded])
        for (position, item, target, _), written in zip(encoded, results, strict=True):
            if isinstance(written, OSError):
                records[position] = self._failure(
                    item.relative, _short_error(written, target), item
                )
            else:
                records[position] = self._record(
                    item.relative,
                    "refined",
                    written,
                    item.input_sha256,
                    item.input_size,
                    item.input_mtime_ns,
                    self.model,
                )
        self.manifest.append_many(records)
        return records

    def decode(self, relative: str) -> _Decoded:
        path = self.plan.root / relative
        item = _Decoded(relative)
        try:
            # One read per file: the bytes that are hashed are the bytes that are decoded.
            data, stat = read_file(path)
            item.input_size, item.input_mtime_ns = stat.st_size, stat.st_mtime_ns
            item.input_sha256 = hashlib.sha256(data).hexdigest()
            item.pixels, item.meta = read_source(path, data)
            item.model_in = model_input(item.pixels, self.channels)
        except (RefinekitError, OSError) as exc:
            item.error = _short_error(exc, path)
            item.pixels = item.model_in = None
        return item

    def _encode(self, item: _Decoded, refined: np.ndarray, target: Path) -> bytes:
        if not np.all(np.isfinite(refined)):
            raise OutputError("the refiner returned NaN or infinite values")
        pixels = restore_pixels(refined, item.pixels)
        return encode_image(pixels, target.suffix, item.meta, jpeg_quality=self.jpeg_quality)

    def _record(
        self, relative: str, action: str, written, input_sha256, input_size, input_mtime_ns, model
    ) -> Record:
        """The manifest line of an output now in place (its task appends it after the batch)."""
        return Record(
            input=relative,
            output=relative,
            action=action,
            input_sha256=input_sha256,
            output_sha256=written.sha256,
            input_size=input_size,
            input_mtime_ns=input_mtime_ns,
            output_size=written.size,
            output_mtime_ns=written.mtime_ns,
            model=model,
            time=now(),
        )

    # -- the device step (caller's thread) --

    def refine_batch(self, items: list[_Decoded], window: _Window) -> None:
        """Start refining `items`, then finish the batch started before them.

        One batch stays in flight: the device already has batch k+1 while this thread waits
        for batch k and hands it to the writers, so it never idles between batches (a refiner
        without `dispatch` simply runs here, one batch at a time).
        """
        started = self._start(items)
        self.finish_refining(window)
        self.in_flight = started

    def _start(self, items: list[_Decoded]):
        batch = np.stack([item.model_in for item in items])
        try:
            dispatch = getattr(self.refiner, "dispatch", None)
            if dispatch is None:
                result = self.refiner(batch)
                wait = lambda: result  # noqa: E731
            else:
                wait = dispatch(batch)
        except Exception as exc:  # noqa: BLE001 - e.g. a shape the refiner refuses
            self._refiner_failed(items, batch.shape, exc)
            return None
        for item in items:
            item.model_in = None  # free the float copy; the writer needs the original only
        return items, batch.shape, wait

    def finish_refining(self, window: _Window) -> None:
        """Wait for the batch in flight (if any) and give its results to the writers."""
        if self.in_flight is None:
            return
        items, shape, wait = self.in_flight
        self.in_flight = None
        try:
            refined = np.asarray(wait())
            if refined.shape != shape:
                raise OutputError(
                    f"the refiner returned shape {refined.shape} for a batch of shape {shape}"
                )
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory for one large shape
            self._refiner_failed(items, shape, exc)
            return
        for start in range(0, len(items), self.chunk):  # every writer gets a share of the batch
            end = start + self.chunk
            window.submit(self.write_batch, items[start:end], refined[start:end])

    def _refiner_failed(
        self, items: list[_Decoded], shape: tuple[int, ...], exc: Exception
    ) -> None:
        error = f"refiner failed on {shape[1]}x{shape[2]} images: {type(exc).__name__}: {exc}"
        for item in items:
            self.finish(self.fail(item.relative, error, item))

    def note(self, item: _Decoded) -> None:
        meta = item.meta
        if meta and meta.bits == 16 and item.pixels is not None and item.pixels.dtype == np.uint8:
            self.notes.add(
                "16-bit colour TIFF images were decoded as 8-bit (install tifffile, and "
                "imagecodecs for LZW/PackBits, to keep 16 bits), so their outputs are 8-bit"
            )


def run_refine(
    plan: RefinePlan,
    refiner: RefinerLike,
    *,
    jpeg_quality: int = 95,
    copy_other: bool = True,
    overwrite: bool = False,
    fail_fast: bool = False,
    workers: int | None = None,
    on_progress: Callable[[RefineProgress], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RefineSummary:
    """Refine the images of `plan` with `refiner` and copy its other files; see the module doc.

    Args:
      plan: from `plan_refine`.
      refiner: a `RefinerLike`; called with float32 NxHxWxC batches in [0, 1], N <= batch_size,
        one shape per call.
      jpeg_quality: 1-100, for JPEG and lossy WebP outputs.
      copy_other: copy non-image files byte for byte (else leave them out).
      overwrite: redo files that an earlier run completed.
      fail_fast: stop at the first file that cannot be read or written.
      workers: threads that decode, and threads that encode and write (default: half the
        CPUs, 1 to 16 each); 0 does all file work in the calling thread, between device batches.
      on_progress: called in this thread before the first file and after each file.
      should_stop: polled in this thread between files; once it returns True no new file is
        started, the files in flight are finished and recorded, and the summary says
        `interrupted` (the CLI sets it on SIGINT/SIGTERM).

    Returns a RefineSummary; failed files are in it and in the manifest, not raised. Raises
    UsageError when OUT holds outputs of another model (unless `overwrite`) or cannot be
    created, RefinekitError when the manifest cannot be written (read-only or full disk).
    """
    if not 1 <= int(jpeg_quality) <= 100:
        raise UsageError(f"--jpeg-quality {jpeg_quality}: expected 1..100")
    output = plan.output
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"OUT {output}: cannot create this folder ({exc.strerror})") from exc
    cleaned = _remove_temp_files(plan)
    model = dict(refiner.model_id)

    previous = {} if overwrite else read_manifests(output)
    images, others, conflicts = [], [], []
    skipped = 0
    for relative in plan.images:
        done = _complete(previous.get(relative), plan.root / relative, output / relative)
        if done is None or done.action != "refined":
            images.append(relative)
        elif not same_model(done.model, model):
            conflicts.append((relative, done.model))
        else:
            skipped += 1
    for relative in plan.others if copy_other else ():
        done = _complete(previous.get(relative), plan.root / relative, output / relative)
        if done is None or done.action != "copied":
            others.append(relative)
        else:
            skipped += 1
    if conflicts:
        relative, old = conflicts[0]
        step = f", --step {old['step']} to resume with it" if old and "step" in old else ""
        raise UsageError(
            f"OUT {output}: {len(conflicts)} image(s) there were refined with "
            f"{describe_model(old)} (e.g. {relative}), not with {describe_model(model)}; "
            f"pass --overwrite to refine them again with this model{step}, "
            "or choose another OUT folder"
        )
    not_copied = len(plan.ignored) + (0 if copy_other else len(plan.others))

    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: expected 0 (the calling thread) or more threads")
    workers = default_workers() if workers is None else workers
    batch_size = max(1, int(refiner.batch_size))
    # Tasks take chunks of files, not single files (see the module doc), small enough that
    # every thread gets a share of a batch.
    chunk = max(1, min(16, batch_size // max(1, workers)))
    with ManifestWriter(plan.manifest_path) as manifest:
        runner = _Runner(
            plan,
            refiner,
            manifest,
            jpeg_quality=int(jpeg_quality),
            fail_fast=fail_fast,
            on_progress=on_progress,
            totals=(len(images), len(others)),
            skipped=skipped,
            should_stop=should_stop,
            chunk=chunk,
        )
        runner.report(None)
        with (
            _file_pool(workers, "refine-read") as readers,
            _file_pool(workers, "refine-write") as writers,
        ):
            # About two batches of results in flight, plus one task per writer.
            window = _Window(writers, 2 * -(-batch_size // chunk) + max(1, workers), runner.finish)
            try:
                _pipeline(runner, window, readers, images, others, batch_size, chunk)
                window.drain()
            finally:
                window.cancel()
                readers.shutdown(wait=True, cancel_futures=True)
                writers.shutdown(wait=True, cancel_futures=True)
        elapsed = time.perf_counter() - runner.start
    refined = runner.counts["refined"]
    return RefineSummary(
        output=output,
        manifest=plan.manifest_path,
        refined=refined,
        copied=runner.counts["copied"],
        skipped=skipped,
        failed=runner.counts["failed"],
        not_copied=not_copied,
        cleaned=cleaned,
        elapsed_s=elapsed,
        images_per_s=refined / elapsed if elapsed > 0 else 0.0,
        stopped=runner.stop,
        interrupted=runner.interrupted,
        failures=tuple(runner.failures),
        notes=tuple(sorted(runner.notes)),
        model=model,
    )


def default_workers() -> int:
    """File threads per pool: half the CPUs (1 to 16).

    Decoding and encoding compete with a CPU refiner for the same cores, and every extra
    thread adds hand-offs: on 2 cores, one reader and one writer ran end to end at 83-94% of
    the model-only speed, two of each at 75-92% (README, Performance). With an accelerator
    doing the refining, half the CPUs are still plenty for the file work.
    """
    return max(1, min(16, (os.cpu_count() or 2) // 2))


class _Inline(Executor):
    """An executor that runs each task at once in the caller's thread (`workers=0`)."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - delivered by future.result(), as a pool does
            future.set_exception(exc)
        return future


def _file_pool(workers: int, name: str) -> Executor:
    if workers == 0:
        return _Inline()
    return ThreadPoolExecutor(workers, name, initializer=_yield_to_compute)


def _yield_to_compute() -> None:
    """Run this file-work thread at a lower scheduling priority than the refiner's threads.

    XLA:CPU splits each convolution over all cores and waits for the slowest part; a decode
    or encode thread that takes a core mid-op stalls all of them. At a lower priority the file
    work fills the gaps between ops instead. Linux schedules threads separately, so this
    touches only the calling thread; elsewhere (or when refused) it does nothing.
    """
    nicer = int(os.environ.get("REFINEKIT_IO_NICE", "10"))  # added to the thread's niceness
    if nicer > 0 and sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nicer)
            )
        except OSError:
            pass


def _pipeline(
    runner: _Runner,
    window: _Window,
    readers: ThreadPoolExecutor,
    images: list[str],
    others: list[str],
    batch_size: int,
    chunk: int,
) -> None:
    for part in _chunks(others, chunk):
        if runner.halted():
            return
        window.submit(runner.copy_files, part)
    # Images wait for a full batch of their shape; beyond `max_waiting` the largest group goes
    # as a partial batch (the refiner pads it), which bounds memory when there are many shapes.
    # Decoding runs about two batches ahead.
    parts = _prefetch(
        readers,
        runner.decode_files,
        _chunks(images, chunk),
        ahead=max(2, 2 * -(-batch_size // chunk)),
    )
    with closing(parts):  # on an early return, cancel the decodes queued ahead
        _refine_all(runner, window, (item for part in parts for item in part), batch_size)
    runner.finish_refining(window)  # the last batch, or the one in flight when stopped


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _refine_all(runner: _Runner, window: _Window, decoded: Iterator, batch_size: int) -> None:
    groups: dict[tuple[int, ...], list[_Decoded]] = {}
    waiting, max_waiting = 0, 4 * batch_size
    for item in decoded:
        window.poll()
        if runner.halted():
            return
        if item.error is not None:
            runner.finish(runner.fail(item.relative, item.error, item))
            continue
        runner.note(item)
        group = groups.setdefault(item.model_in.shape, [])
        group.append(item)
        waiting += 1
        if len(group) == batch_size or waiting > max_waiting:
            shape = (
                item.model_in.shape
                if len(group) == batch_size
                else max(groups, key=lambda s: len(groups[s]))
            )
            batch = groups.pop(shape)
            waiting -= len(batch)
            runner.refine_batch(batch, window)
    for shape in sorted(groups):
        if runner.halted():
            return
        runner.refine_batch(groups[shape], window)


def refine_folder(
    input: Path,
    output: Path,
    refiner: RefinerLike,
    *,
    shard: tuple[int, int] | None = None,
    **options,
) -> RefineSummary:
    """`plan_refine` then `run_refine` (options: those of `run_refine`)."""
    return run_refine(plan_refine(input, output, shard=shard), refiner, **options)
