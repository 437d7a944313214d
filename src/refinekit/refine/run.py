"""`run_refine`: refine a plan's images and copy its other files (see the package docstring)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import closing
from pathlib import Path

from ..errors import UsageError
from ..events import Finished, OnEvent
from ..io.lock import OUT_LOCK_NAME, FolderLock
from .manifest import ManifestWriter
from .pipeline import chunks, default_workers, file_pool, prefetch
from .plan import RefinePlan, plan_notes, plan_refine
from .results import RefineSummary
from .resume import Work, remaining_work, remove_temp_files
from .runner import Decoded, RefinerLike, Runner
from .variants import check_seed


def run_refine(
    plan: RefinePlan,
    refiner: RefinerLike,
    *,
    jpeg_quality: int = 95,
    copy_other: bool = True,
    overwrite: bool = False,
    fail_fast: bool = False,
    workers: int | None = None,
    on_event: OnEvent | None = None,
    should_stop: Callable[[], bool] | None = None,
    seed: int = 0,
) -> RefineSummary:
    """Refine the images of `plan` with `refiner` and copy its other files.

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
      on_event: receives refinekit.events in this thread (docs/api.md): Started (total: the
        files of this run), a Progress after each file (its `values`: the counts, elapsed_s,
        images_per_s and the manifest `record`), and Finished (the summary's `to_dict()`).
      should_stop: polled in this thread between files; once it returns True no new file is
        started, the files in flight are finished and recorded, and the summary says
        `interrupted` (the CLI sets it on SIGINT/SIGTERM).
      seed: for a refiner with per-image draws (`draws_per_image`), which draws: variant v of
        `plan.variants` uses salt seed * MAX_VARIANTS + v - 1 (variants.py).

    With `plan.variants` K > 1 each image gives K outputs, and counts, records and events are
    per output. Returns a RefineSummary; failed files are in it and in the manifest, not raised. Raises
    UsageError when OUT holds outputs of another model (unless `overwrite`) or cannot be
    created, RefinekitError when the manifest cannot be written (read-only or full disk).
    UsageError too for K > 1 with a deterministic refiner: its variants would be identical.
    """
    seed = check_seed(seed)
    salted = bool(getattr(refiner, "draws_per_image", False))
    if plan.variants > 1 and not salted:
        kind = getattr(getattr(refiner, "config", None), "refiner", None)
        which = f"the {kind} refiner" if kind else "this refiner"
        raise UsageError(
            f"--variants {plan.variants}: {which} is deterministic, so every variant would be "
            "the same image; use --variants 1 (kinds with per-image draws: acquisition, "
            "acquisition+resnet)"
        )
    if not 1 <= int(jpeg_quality) <= 100:
        raise UsageError(f"--jpeg-quality {jpeg_quality}: expected 1..100")
    if workers is not None and workers < 0:
        raise UsageError(f"--workers {workers}: expected 0 (the calling thread) or more threads")
    output = plan.output
    # Everything is checked before anything is written (OUT created, its lock taken): OUT's
    # manifests (regular files, never links), files there that refinekit did not write, outputs
    # of another model. A run that finished in between only makes this one redo its files.
    work = remaining_work(
        plan,
        dict(refiner.model_id),
        overwrite=overwrite,
        copy_other=copy_other,
        seed=seed if salted else None,
    )
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"OUT {output}: cannot create this folder ({exc.strerror})") from exc
    # One writer per OUT (per shard of it): a second refine is refused here, before it could
    # remove the first one's live temporary files.
    with FolderLock(output, "OUT", plan.shard, OUT_LOCK_NAME):
        return _run_locked(
            plan,
            refiner,
            work,
            jpeg_quality=jpeg_quality,
            copy_other=copy_other,
            overwrite=overwrite,
            fail_fast=fail_fast,
            workers=workers,
            on_event=on_event,
            should_stop=should_stop,
            seed=seed,
        )


def _run_locked(
    plan: RefinePlan,
    refiner: RefinerLike,
    work: Work,
    *,
    jpeg_quality: int,
    copy_other: bool,
    overwrite: bool,
    fail_fast: bool,
    workers: int | None,
    on_event: OnEvent | None,
    should_stop: Callable[[], bool] | None,
    seed: int,
) -> RefineSummary:
    output = plan.output
    cleaned = remove_temp_files(plan)
    model = dict(refiner.model_id)
    not_copied = len(plan.ignored) + (0 if copy_other else len(plan.others))
    workers = default_workers() if workers is None else workers
    batch_size = max(1, int(refiner.batch_size))
    # Tasks take chunks of files, not single files (pipeline.py), small enough that every
    # thread gets a share of a batch.
    chunk = max(1, min(16, batch_size // max(1, workers)))
    with (
        ManifestWriter(plan.manifest_path) as manifest,
        file_pool(workers, "refine-read") as readers,
        file_pool(workers, "refine-write") as writers,
    ):
        runner = Runner(
            plan,
            refiner,
            manifest,
            writers,
            # About two batches of results in flight, plus one task per writer.
            window=2 * -(-batch_size // chunk) + max(1, workers),
            jpeg_quality=int(jpeg_quality),
            fail_fast=fail_fast,
            on_event=on_event,
            totals=(work.count(work.images), work.count(work.others)),
            skipped=work.skipped,
            should_stop=should_stop,
            chunk=chunk,
            outputs=work.outputs,
            seed=seed,
        )
        runner.started()
        try:
            _feed(runner, readers, work.images, work.others, batch_size, chunk)
            runner.window.drain()
        finally:
            runner.window.cancel()
            readers.shutdown(wait=True, cancel_futures=True)
            writers.shutdown(wait=True, cancel_futures=True)
        elapsed = time.perf_counter() - runner.start
    refined = runner.counts["refined"]
    summary = RefineSummary(
        output=output,
        manifest=plan.manifest_path,
        refined=refined,
        copied=runner.counts["copied"],
        skipped=work.skipped,
        failed=runner.counts["failed"],
        not_copied=not_copied,
        cleaned=cleaned,
        elapsed_s=elapsed,
        images_per_s=refined / elapsed if elapsed > 0 else 0.0,
        stopped=runner.stop,
        interrupted=runner.interrupted,
        failures=tuple(runner.failures),
        notes=tuple(sorted(runner.notes | plan_notes(plan, copy_other))),
        model=model,
        variants=plan.variants,
        seed=seed if getattr(refiner, "draws_per_image", False) else None,
    )
    if on_event is not None:
        on_event(Finished("refine", summary.to_dict()))
    return summary


def _feed(
    runner: Runner,
    readers: Executor,
    images: list[str],
    others: list[str],
    batch_size: int,
    chunk: int,
) -> None:
    """Copy tasks first, then decoded images in shape batches to the device."""
    for part in chunks(others, chunk):
        if runner.halted():
            return
        runner.window.submit(runner.copy_files, part)
    # Decoding runs about two batches ahead.
    parts = prefetch(
        readers,
        runner.decode_files,
        chunks(images, chunk),
        ahead=max(2, 2 * -(-batch_size // chunk)),
    )
    with closing(parts):  # on an early return, cancel the decodes queued ahead
        _refine_all(runner, (item for part in parts for item in part), batch_size)
    runner.finish_refining()  # the last batch, or the one in flight when stopped


def _refine_all(runner: Runner, decoded: Iterator[Decoded], batch_size: int) -> None:
    """Group images by shape into batches (each shape compiles once). Images wait for a full
    batch of their shape; beyond `max_waiting` the largest group goes as a partial batch (the
    refiner pads it), which bounds memory when there are many shapes."""
    groups: dict[tuple[int, ...], list[Decoded]] = {}
    waiting, max_waiting = 0, 4 * batch_size
    for item in decoded:
        runner.window.poll()
        if runner.halted():
            return
        if item.error is not None or item.model_in is None:
            runner.fail(item, item.error or "not decoded")
            continue
        runner.note(item)
        shape = item.model_in.shape
        group = groups.setdefault(shape, [])
        group.append(item)
        waiting += 1
        if len(group) == batch_size or waiting > max_waiting:
            if len(group) != batch_size:
                shape = max(groups, key=lambda s: len(groups[s]))
            batch = groups.pop(shape)
            waiting -= len(batch)
            runner.refine_batch(batch)
    for shape in sorted(groups):
        if runner.halted():
            return
        runner.refine_batch(groups[shape])


def refine_folder(
    input: Path,
    output: Path,
    refiner: RefinerLike,
    *,
    shard: tuple[int, int] | None = None,
    variants: int = 1,
    **options,
) -> RefineSummary:
    """`plan_refine` then `run_refine` (options: those of `run_refine`)."""
    plan = plan_refine(input, output, shard=shard, variants=variants)
    return run_refine(plan, refiner, **options)
