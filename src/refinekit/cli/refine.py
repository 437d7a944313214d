"""`refinekit refine IN OUT --run RUN | --model FILE`: a thin wrapper around `refinekit.refine`."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from ..errors import RefinekitError, UsageError
from ..events import Event, Progress, Started
from ..stop import StopOnSignals
from .common import check_run, interactive, log, progress_bar, stdout_write


def _stopped(signals: StopOnSignals, done: str) -> Exception:
    return signals.interrupted(
        f"stopped{done}; every file in OUT is complete and recorded in the manifest; "
        "run the same command again to resume"
    )


class _Loader:
    """Loads the refiner to use. `check` is its cheap part (no JAX, nothing read but a folder
    listing), run before the input is scanned; the call imports JAX and loads the model, after
    the flags and folders are checked. A stand-in loader (the tests') may have no `check`."""

    @staticmethod
    def check(run: Path | None, step: str | None, model: Path | None) -> None:
        if run is not None:
            check_run(run, "--run", step)
        elif model is not None and not model.exists():
            raise UsageError(f"--model {model}: no such file")

    def __call__(
        self,
        run: Path | None,
        step: str | None,
        model: Path | None,
        batch_size: int,
        micro_batch: int | None,
    ):
        from ..inference.refiner import load_refiner
        from ..runtime import setup
        from ..training.selection import parse_step

        setup()
        return load_refiner(
            run=run,
            step=parse_step(step),
            model=model,
            batch_size=batch_size,
            micro_batch=micro_batch,
        )


_load_refiner = _Loader()


MODEL = "Model"
OUTPUT = "Output"
SPEED = "Speed"


def refine(
    input: Annotated[
        Path,
        typer.Argument(
            metavar="IN",
            help="Synthetic images: a folder (searched recursively) or one file; never written.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Argument(
            metavar="OUT",
            help="Folder to write; it mirrors IN (paths, names, formats, modes, bit depths).",
            show_default=False,
        ),
    ],
    run: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Training run folder whose refiner to use.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            metavar="STEP",
            help="Checkpoint of --run: best (the best healthy one), latest, or a step number.",
            show_default="best",
            rich_help_panel=MODEL,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Exported refiner ('refinekit export') to use instead of --run.",
            rich_help_panel=MODEL,
        ),
    ] = None,
    jpeg_quality: Annotated[
        int,
        typer.Option(
            min=1,
            max=100,
            help="Quality of JPEG outputs, and of WebP outputs of lossy inputs.",
            rich_help_panel=OUTPUT,
        ),
    ] = 95,
    copy_other: Annotated[
        bool,
        typer.Option(
            "--copy-other/--no-copy-other",
            help="Copy files that are not images (labels, sidecars) byte for byte into OUT.",
            rich_help_panel=OUTPUT,
        ),
    ] = True,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Redo files an earlier run completed (otherwise a rerun resumes).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    fail_fast: Annotated[
        bool,
        typer.Option(
            "--fail-fast",
            help="Stop at the first file that fails (otherwise: skipped, recorded, exit 1).",
            rich_help_panel=OUTPUT,
        ),
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            metavar="K/N",
            help="Only shard K of N (a hash of the relative path): N processes split a folder.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    variants: Annotated[
        int,
        typer.Option(
            metavar="K",
            help="Outputs per image, NAME_v1 ... NAME_vK, each its own camera draw, its sidecar "
            "files copied for each; only for refiners with per-image draws.",
            rich_help_panel=MODEL,
        ),
    ] = 1,
    seed: Annotated[
        int,
        typer.Option(
            metavar="N",
            help="Which draws a refiner with per-image draws makes: the same seed, the same "
            "outputs; another seed, others.",
            rich_help_panel=MODEL,
        ),
    ] = 0,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Images per device batch (padded, so each image size compiles once).",
            rich_help_panel=SPEED,
        ),
    ] = 32,
    micro_batch: Annotated[
        int | None,
        typer.Option(
            "--micro-batch",
            min=0,
            help="Images per forward pass within a batch (0: the whole batch).",
            show_default="8,000 pixels' worth on one CPU device, else 0",
            rich_help_panel=SPEED,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Threads that decode, and as many that encode (0: the main thread).",
            show_default="half the CPUs, 1 to 16",
            rich_help_panel=SPEED,
        ),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the summary as JSON on stdout.", rich_help_panel=OUTPUT),
    ] = False,
) -> None:
    """Refine every image of IN into OUT with a trained refiner, keeping everything else as it was.

    Reruns resume: files already complete in OUT are skipped. A manifest,
    OUT/refinekit-manifest.jsonl, records each file: input, output, action, SHA-256 of both, model.
    --variants K writes K outputs per image, for refiners with per-image draws (docs/refine.md).
    """
    from ..refine import describe_model, parse_shard, plan_refine, run_refine
    from ..refine.variants import check_seed, check_variants

    if (run is None) == (model is None):
        raise UsageError("give the refiner with exactly one of --run RUN or --model FILE")
    if step is not None and run is None:
        raise UsageError("--step picks a checkpoint of --run; an exported --model has one step")
    shard_kn = parse_shard(shard) if shard is not None else None
    variants, seed = check_variants(variants), check_seed(seed)
    check = getattr(_load_refiner, "check", None)
    if check is not None:
        check(run, step, model)  # before the input is scanned
    plan = plan_refine(input, output, shard=shard_kn, variants=variants)
    where = f" (shard {shard_kn[0]}/{shard_kn[1]} of {plan.all_images} images)" if shard_kn else ""
    times = f" x {variants} variants" if variants > 1 else ""
    log(
        f"refine: {len(plan.images)} images{times} and {len(plan.others)} other files{where}, "
        f"{escape(str(input))} -> {escape(str(output))}"
    )
    with StopOnSignals() as signals:
        refiner = _load_refiner(run, step, model, batch_size, micro_batch)
        # The libraries' objects (JAX's alone are hundreds of thousands) never die: frozen, the
        # collector's full passes skip them, which was ~1% of refine's CPU on small images.
        gc.freeze()
        log(f"model: {escape(describe_model(refiner.model_id))}, {refiner.channels} channel(s)")
        if getattr(refiner, "selection_reason", ""):
            log(f"using step {refiner.model_id['step']}: {escape(refiner.selection_reason)}")
        if getattr(refiner, "selection_warning", None):
            log(f"[yellow]warning:[/] {escape(refiner.selection_warning)}")
        if seed and variants == 1 and not getattr(refiner, "draws_per_image", False):
            log(f"[yellow]warning:[/] --seed {seed} changes nothing: this refiner is deterministic")
        if signals.requested():
            raise _stopped(signals, " before writing anything")
        reporter = _RichReporter() if interactive() else _LogReporter()
        try:
            summary = run_refine(
                plan,
                refiner,
                jpeg_quality=jpeg_quality,
                copy_other=copy_other,
                overwrite=overwrite,
                fail_fast=fail_fast,
                workers=workers,
                on_event=reporter,
                should_stop=signals.requested,
                seed=seed,
            )
        finally:
            reporter.close()

    for note in summary.notes:
        log(f"[yellow]note:[/] {escape(note)}")
    extra = f", not copied {summary.not_copied}" if summary.not_copied else ""
    extra += (
        f", removed {summary.cleaned} temporary file(s) of an earlier run"
        if summary.cleaned
        else ""
    )
    log(
        f"refined {summary.refined}, copied {summary.copied}, skipped {summary.skipped} "
        f"(already done), failed {summary.failed}{extra} in {summary.elapsed_s:.1f} s "
        f"({summary.images_per_s:.1f} images/s); manifest {escape(str(summary.manifest))}"
    )
    if as_json:
        stdout_write(json.dumps(summary.to_dict(), indent=2) + "\n")
    if summary.interrupted:
        raise _stopped(
            signals,
            f" after {summary.refined + summary.copied + summary.failed} file(s) of this run",
        )
    if summary.stopped:
        raise RefinekitError(f"stopped at the first failure (--fail-fast): {summary.failures[0]}")
    if summary.failed:
        raise RefinekitError(
            f"{summary.failed} file(s) could not be refined or copied (listed above and "
            f"recorded as failed in {summary.manifest}); everything else was written"
        )


def _counts(event: Event) -> Mapping[str, Any] | None:
    """The counts of a Started (all zero) or Progress event; None for the others."""
    if isinstance(event, Progress):
        return event.values
    if isinstance(event, Started):
        zero = {"refined": 0, "copied": 0, "failed": 0, "images_per_s": 0.0, "record": None}
        return {
            **zero,
            "images_total": event.details["images"],
            "others_total": event.details["others"],
        }
    return None


def _failure(counts: Mapping[str, Any]) -> str | None:
    record = counts["record"]
    if record is not None and record.action == "failed":
        return f"[red]failed:[/] {escape(record.input)}: {escape(str(record.error))}"
    return None


class _LogReporter:
    """Plain lines for logs and CI: each failure, and a progress line every 10 seconds."""

    every_s = 10.0

    def __init__(self) -> None:
        self.last = time.monotonic()

    def __call__(self, event: Event) -> None:
        counts = _counts(event)
        if counts is None:
            return
        failure = _failure(counts)
        if failure is not None:
            log(failure)
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            log(
                f"  {counts['refined'] + counts['failed']}/{counts['images_total']} images, "
                f"{counts['copied']}/{counts['others_total']} other files, "
                f"{counts['images_per_s']:.1f} images/s"
            )

    def close(self) -> None:
        pass


class _RichReporter:
    """A progress bar with images/s on a terminal."""

    def __init__(self) -> None:
        self.progress = progress_bar("[bold]refine[/]", "rate", "extra")
        self.task = None
        self.progress.start()

    def __call__(self, event: Event) -> None:
        counts = _counts(event)
        if counts is None:
            return
        if self.task is None:
            total = counts["images_total"] + counts["others_total"]
            self.task = self.progress.add_task("refine", total=total, rate="", extra="")
        failure = _failure(counts)
        if failure is not None:
            self.progress.console.print(failure, soft_wrap=True, highlight=False)
        self.progress.update(
            self.task,
            completed=counts["refined"] + counts["copied"] + counts["failed"],
            rate=f"{counts['images_per_s']:.1f} images/s",
            extra=f"copied {counts['copied']}, failed {counts['failed']}",
        )

    def close(self) -> None:
        self.progress.stop()
