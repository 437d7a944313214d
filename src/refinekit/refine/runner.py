"""The refine worker: decode files, refine batches on the device, encode, write and record.

`Runner` holds a run's state (counts, failures, the manifest); its `decode_files`,
`write_batch` and `copy_files` run on file threads, one task per chunk of files, and
everything else in the calling thread (see `run.py`, and `pipeline.py` for the machinery).
Counts, records and failures are per output: with `--variants K` an image has K
(variants.py), each refined with its own salt and written, recorded and counted on its own.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import OutputError, RefinekitError
from ..events import OnEvent, Progress, Started
from ..io.atomic import Written, atomic_copy_many, atomic_write_many
from ..io.decode import read_source
from ..io.encode import encode_image
from ..io.files import read_file
from ..io.meta import SourceMeta
from .convert import model_input, restore_pixels
from .manifest import ManifestWriter, Record, now
from .pipeline import OneInFlight, Window
from .plan import Outputs, RefinePlan
from .variants import salt


class RefinerLike(Protocol):
    """What refine needs of a refiner (`inference.Refiner` has it). A refiner with per-image
    draws also has `draws_per_image = True` and takes `salt=` in its calls."""

    channels: int
    batch_size: int
    model_id: dict

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


@dataclass
class Decoded:
    """One input file after decoding (pixels None and `error` set when it failed)."""

    relative: str
    input_sha256: str | None = None
    input_size: int | None = None
    input_mtime_ns: int | None = None
    pixels: np.ndarray | None = None
    meta: SourceMeta | None = None
    model_in: np.ndarray | None = None
    error: str | None = None
    outputs: Outputs = ()  # (variant, output path) of each output left to write


# A batch on the device: its files, its NxHxWxC shape, and per variant a call that waits for
# that variant's result.
OnDevice = tuple[list[Decoded], tuple[int, ...], list[tuple[int | None, Callable[[], np.ndarray]]]]


def short_error(exc: BaseException, path: Path) -> str:
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


class Runner:
    """One refine run's worker. `writers` runs the encode/write and copy tasks, at most
    `window` of them queued; `chunk` files per task."""

    def __init__(
        self,
        plan: RefinePlan,
        refiner: RefinerLike,
        manifest: ManifestWriter,
        writers: Executor,
        *,
        window: int,
        jpeg_quality: int,
        fail_fast: bool,
        on_event: OnEvent | None,
        totals: tuple[int, int],
        skipped: int,
        should_stop: Callable[[], bool] | None = None,
        chunk: int = 1,
        outputs: Callable[[str], Outputs] | None = None,
        seed: int = 0,
    ):
        self.plan, self.refiner, self.manifest = plan, refiner, manifest
        # The outputs left of an input (resume.Work.outputs); default: one, at its own path.
        self.outputs = outputs or (lambda relative: ((None, relative),))
        self.seed = seed
        self.salted = bool(getattr(refiner, "draws_per_image", False))
        self.chunk = chunk  # files per reading, writing or copying task
        self.model = dict(refiner.model_id)
        self.channels = int(refiner.channels)
        self.jpeg_quality, self.fail_fast, self.on_event = jpeg_quality, fail_fast, on_event
        self.totals, self.skipped = totals, skipped
        self.counts = {"refined": 0, "copied": 0, "failed": 0}
        self.failures: list[str] = []
        self.notes: set[str] = set()
        self.stop = False  # fail_fast: stopped at a failure
        self.interrupted = False  # should_stop() said so
        self.should_stop = should_stop
        self.window: Window[Record] = Window(writers, window, self.finish)
        self.device: OneInFlight[OnDevice] = OneInFlight(self._hand_to_writers)
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
            which = "" if record.variant is None else f" (variant {record.variant})"
            self.failures.append(f"{record.input}{which}: {record.error}")
            if self.fail_fast:
                self.stop = True
        self.report(record)

    def started(self) -> None:
        """Started: the files of this run (those an earlier run completed are not counted)."""
        if self.on_event is not None:
            images, others = self.totals
            details = {"images": images, "others": others, "skipped": self.skipped}
            self.on_event(Started("refine", images + others, 0, details))

    def report(self, record: Record) -> None:
        """One Progress per finished file (refined, copied or failed), with the counts so far."""
        if self.on_event is None:
            return
        elapsed = time.perf_counter() - self.start
        counts, (images, others) = self.counts, self.totals
        values = {
            "images_total": images,
            "others_total": others,
            "refined": counts["refined"],
            "copied": counts["copied"],
            "skipped": self.skipped,
            "failed": counts["failed"],
            "elapsed_s": elapsed,
            "images_per_s": counts["refined"] / elapsed if elapsed > 0 else 0.0,
            "record": record,
        }
        done = counts["refined"] + counts["copied"] + counts["failed"]
        self.on_event(Progress("refine", None, done, images + others, values))

    def fail(self, item: Decoded, error: str, variant: int | None | str = "all") -> None:
        """Record and count a failure of each output of `item` (or of its `variant` output) now:
        the main thread's decode failures and refiner errors."""
        wanted = [v for v, _ in item.outputs if variant == "all" or v == variant]
        records = [self._failure(item.relative, error, item, v) for v in wanted]
        self.manifest.append_many(records)
        for record in records:
            self.finish(record)

    def _failure(
        self, relative: str, error: str, item: Decoded | None = None, variant: int | None = None
    ) -> Record:
        return Record(
            input=relative,
            output=None,
            action="failed",
            input_sha256=item.input_sha256 if item else None,
            input_size=item.input_size if item else None,
            input_mtime_ns=item.input_mtime_ns if item else None,
            error=error,
            time=now(),
            variant=variant,
        )

    def note(self, item: Decoded) -> None:
        meta = item.meta
        if meta and meta.bits == 16 and item.pixels is not None and item.pixels.dtype == np.uint8:
            self.notes.add(
                "16-bit colour TIFF images were decoded as 8-bit (install tifffile, and "
                "imagecodecs for LZW/PackBits, to keep 16 bits), so their outputs are 8-bit"
            )
        if meta and (meta.bits in (1, 2, 4) or meta.mode == "1"):
            self.notes.add(
                "1-, 2- and 4-bit images were decoded to 8 bits (bilevel and gray: 8-bit gray; "
                "palette: 8-bit RGB or RGBA), so their outputs are 8-bit"
            )

    # -- workers: one task per chunk of files, so that thread hand-offs are per chunk --

    def copy_files(self, relatives: list[str]) -> list[Record]:
        """Copy each file to each of its outputs (a sidecar: one per variant)."""
        records: list[Record] = []
        jobs, stats = [], []  # files that exist: copied together, with one sync
        for relative in relatives:
            source = self.plan.root / relative
            try:
                stat = source.stat()
            except OSError as exc:
                error = short_error(exc, source)
                records += [
                    self._failure(relative, error, None, v) for v, _ in self.outputs(relative)
                ]
                continue
            for variant, out in self.outputs(relative):
                stats.append((relative, stat, variant, out))
                jobs.append((source, self.plan.output / out))
        self.manifest.intend([out for *_, out in stats])
        for (relative, stat, variant, out), (source, _), written in zip(
            stats, jobs, atomic_copy_many(jobs), strict=True
        ):
            if isinstance(written, OSError):
                records.append(self._failure(relative, short_error(written, source), None, variant))
            else:
                size, mtime = stat.st_size, stat.st_mtime_ns
                record = self._record(relative, "copied", written, written.sha256, size, mtime)
                records.append(replace(record, output=out, variant=variant))
        return self._append(records)

    def decode_files(self, relatives: list[str]) -> list[Decoded]:
        return [self.decode(relative) for relative in relatives]

    def decode(self, relative: str) -> Decoded:
        path = self.plan.root / relative
        item = Decoded(relative, outputs=self.outputs(relative))
        try:
            # One read per file: the bytes that are hashed are the bytes that are decoded.
            data, stat = read_file(path)
            item.input_size, item.input_mtime_ns = stat.st_size, stat.st_mtime_ns
            item.input_sha256 = hashlib.sha256(data).hexdigest()
            item.pixels, item.meta = read_source(path, data)
            item.model_in = model_input(item.pixels, self.channels)
        except (RefinekitError, OSError) as exc:
            item.error = short_error(exc, path)
            item.pixels = item.model_in = None
        return item

    def write_batch(
        self, items: list[Decoded], refined: np.ndarray, variant: int | None = None
    ) -> list[Record]:
        """Encode a chunk's `variant` outputs, write them with one sync for all
        (`atomic_write_many`), then append their manifest lines."""
        records: list[Record | None] = [None] * len(items)
        encoded = []  # (position, item, name, target, bytes)
        for position, (item, out) in enumerate(zip(items, refined, strict=True)):
            name = dict(item.outputs)[variant]
            target = self.plan.output / name
            try:
                encoded.append((position, item, name, target, self._encode(item, out, target)))
            except (RefinekitError, OSError, ValueError) as exc:
                error = short_error(exc, target)
                records[position] = self._failure(item.relative, error, item, variant)
        self.manifest.intend([name for _, _, name, _, _ in encoded])
        results = atomic_write_many([(target, data) for *_, target, data in encoded])
        for (position, item, name, target, _), written in zip(encoded, results, strict=True):
            if isinstance(written, OSError):
                error = short_error(written, target)
                records[position] = self._failure(item.relative, error, item, variant)
            else:
                seed = self.seed if self.salted else None
                record = self._record(
                    item.relative,
                    "refined",
                    written,
                    item.input_sha256,
                    item.input_size,
                    item.input_mtime_ns,
                    self.model,
                )
                records[position] = replace(record, output=name, variant=variant, seed=seed)
        return self._append(records)

    def _append(self, records: Sequence[Record | None]) -> list[Record]:
        done = [record for record in records if record is not None]  # every slot is filled
        self.manifest.append_many(done)  # after the files are in place, never before
        return done

    def _encode(self, item: Decoded, refined: np.ndarray, target: Path) -> bytes:
        if not np.all(np.isfinite(refined)):
            raise OutputError("the refiner returned NaN or infinite values")
        assert item.pixels is not None  # decoded items only reach the device
        pixels = restore_pixels(refined, item.pixels)
        return encode_image(pixels, target.suffix, item.meta, jpeg_quality=self.jpeg_quality)

    def _record(
        self,
        relative: str,
        action: str,
        written: Written,
        input_sha256: str | None,
        input_size: int | None,
        input_mtime_ns: int | None,
        model: dict | None = None,
    ) -> Record:
        """The manifest line of an output now in place (its task appends it after the chunk)."""
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

    def refine_batch(self, items: list[Decoded]) -> None:
        """Start refining `items`, then finish the batch started before them (`OneInFlight`:
        a refiner without `dispatch` simply runs here, one batch at a time)."""
        self.device.push(self._start(items))

    def finish_refining(self) -> None:
        """Wait for the batch in flight (if any) and give its results to the writers."""
        self.device.flush()

    def _start(self, items: list[Decoded]) -> OnDevice | None:
        """Start one device call per variant any of `items` still needs, each with its salt."""
        batch = np.stack([item.model_in for item in items if item.model_in is not None])
        wanted = sorted({v for item in items for v, _ in item.outputs}, key=lambda v: v or 0)
        started: list[tuple[int | None, Callable[[], np.ndarray]]] = []
        try:
            for variant in wanted:
                options = {"salt": salt(self.seed, variant)} if self.salted else {}
                dispatch = getattr(self.refiner, "dispatch", None)
                if dispatch is None:
                    started.append((variant, _ready(self.refiner(batch, **options))))
                else:
                    started.append((variant, dispatch(batch, **options)))
        except Exception as exc:  # noqa: BLE001 - e.g. a shape the refiner refuses
            self._refiner_failed(items, batch.shape, exc)
            return None
        for item in items:
            item.model_in = None  # free the float copy; the writer needs the original only
        return items, batch.shape, started

    def _hand_to_writers(self, in_flight: OnDevice) -> None:
        items, shape, started = in_flight
        for variant, wait in started:
            try:
                refined = np.asarray(wait())
                if refined.shape != shape:
                    raise OutputError(
                        f"the refiner returned shape {refined.shape} for a batch of shape {shape}"
                    )
            except Exception as exc:  # noqa: BLE001 - e.g. out of memory for one large shape
                self._refiner_failed(items, shape, exc, variant)
                continue
            # The items that still need this variant (a resumed run may have some already).
            rows = [i for i, item in enumerate(items) if variant in dict(item.outputs)]
            for start in range(0, len(rows), self.chunk):  # every writer gets a share
                part = rows[start : start + self.chunk]
                chosen = [items[i] for i in part]
                self.window.submit(self.write_batch, chosen, refined[part], variant)

    def _refiner_failed(
        self, items: list[Decoded], shape: tuple, exc: Exception, variant: int | None | str = "all"
    ) -> None:
        error = f"refiner failed on {shape[1]}x{shape[2]} images: {type(exc).__name__}: {exc}"
        for item in items:
            self.fail(item, error, variant)


def _ready(result: np.ndarray) -> Callable[[], np.ndarray]:
    """A finished result as a call that waits for it (a refiner without `dispatch`)."""
    return lambda: result
