"""`refinekit gap-report`: a thin wrapper around `refinekit.gap.run.gap_report`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from ..events import Event, Progress, Stage
from .common import check_run, console, interactive, log, progress_bar, stdout_write

SETS = "Image sets"
REFINER = "Refiner"
REPORTS = "Reports"
MEASURE = "Measurement"


def gap_report(
    real: Annotated[
        Path,
        typer.Option(
            help="Real images: a folder (searched recursively) or one file.",
            show_default=False,
            rich_help_panel=SETS,
        ),
    ],
    synthetic: Annotated[
        Path,
        typer.Option(
            help="Synthetic images: a folder (searched recursively) or one file.",
            show_default=False,
            rich_help_panel=SETS,
        ),
    ],
    refined: Annotated[
        Path | None,
        typer.Option(
            help="Refined images to measure; paired with synthetic files of the same name.",
            rich_help_panel=SETS,
        ),
    ] = None,
    real_labelled: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Labelled real images (class folders named like the synthetic ones) for the "
            "gap split, when --real has no class folders.",
            show_default="--real, when it has class folders",
            rich_help_panel=SETS,
        ),
    ] = None,
    run: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Training run whose refiner refines the synthetic set on the fly.",
            rich_help_panel=REFINER,
        ),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option(
            metavar="STEP",
            help="Checkpoint of --run: best (the best healthy one), latest, or a step number.",
            show_default="best",
            rich_help_panel=REFINER,
        ),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Exported refiner ('refinekit export') to use instead of --run.",
            rich_help_panel=REFINER,
        ),
    ] = None,
    json_path: Annotated[
        Path | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Write every number, interval and setting here (docs/gap-report.md).",
            rich_help_panel=REPORTS,
        ),
    ] = None,
    html_path: Annotated[
        Path | None,
        typer.Option(
            "--html",
            metavar="FILE",
            help="Write a self-contained HTML report (tables, samples, plots) here.",
            rich_help_panel=REPORTS,
        ),
    ] = None,
    size: Annotated[
        tuple[int, int] | None,
        typer.Option(
            metavar="H W",
            help="Common size every set is resized to (antialiased).",
            show_default="the real images' size, when they share one",
            rich_help_panel=MEASURE,
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            help="Channels to compare in: 1 (gray) or 3 (RGB).",
            show_default="the synthetic set's",
            rich_help_panel=MEASURE,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            min=0,
            help="Seed of every random choice: the same seed, the same report.",
            rich_help_panel=MEASURE,
        ),
    ] = 0,
    bootstrap: Annotated[
        int,
        typer.Option(
            min=20, help="Bootstrap resamples behind each 95% interval.", rich_help_panel=MEASURE
        ),
    ] = 200,
    batch_size: Annotated[
        int,
        typer.Option(
            min=1,
            help="Images per batch of the networks (speed and memory, not the numbers).",
            rich_help_panel=MEASURE,
        ),
    ] = 64,
    max_images: Annotated[
        int,
        typer.Option(
            min=20,
            help="Larger sets are subsampled (seeded) to this many images.",
            rich_help_panel=MEASURE,
        ),
    ] = 10_000,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at the first undecodable image instead of skipping it.",
            rich_help_panel=SETS,
        ),
    ] = False,
    save_refined: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="With --run or --model: also write the refined images here as PNG.",
            rich_help_panel=REPORTS,
        ),
    ] = None,
) -> None:
    """Measure the synthetic-to-real gap, and how much of it refinement closed.

    Synthetic (and refined) images are compared with one half of the real set; the other half
    gives the real-vs-real floor. Each metric gets a bootstrap 95% interval and "gap closed",
    and the report a verdict. With labelled real images, the gap split: what a classifier
    loses on real images, split into content mix, refinement and the rest.
    """
    from ..errors import UsageError
    from ..gap.run import gap_report as run_gap_report
    from ..runtime import setup

    # The cheap checks, before JAX starts and any image is read.
    given = (
        ("--real", real),
        ("--synthetic", synthetic),
        ("--refined", refined),
        ("--real-labelled", real_labelled),
    )
    for flag, path in given:
        if path is not None and not path.exists():
            raise UsageError(f"{flag} {path}: no such file or folder")
    if run is not None and model is None and refined is None:
        check_run(run, "--run", step)
    setup()
    run_step: int | str | None = step  # the chosen step number when RUN is a run folder
    if run is not None and model is None and refined is None:
        from ..training.selection import parse_step, resolve

        choice = resolve(run, parse_step(step))
        log(f"using step {choice.step} of {escape(str(run))}: {escape(choice.reason)}")
        if choice.warning:
            log(f"[yellow]warning:[/] {escape(choice.warning)}")
        run_step = choice.step
    started = time.monotonic()
    stages = _RichStages() if interactive() else _LogStages()
    try:
        report = run_gap_report(
            real,
            synthetic,
            refined=refined,
            run=run,
            step=run_step,
            model=model,
            json_path=json_path,
            html_path=html_path,
            size=size,
            channels=channels,
            seed=seed,
            replicates=bootstrap,
            batch_size=batch_size,
            max_images=max_images,
            strict=strict,
            save_refined=save_refined,
            on_event=stages,
            real_labelled=real_labelled,
        )
    finally:
        stages.close()
    if interactive():
        from rich.text import Text

        from ..gap.split_advice import lines as split_lines
        from ..gap.table import report_table

        console.print(report_table(report.document))
        for line in split_lines(report.document.get("gap_split")):
            console.print(Text(line))
    else:
        stdout_write(_plain_table(report.document))
    skipped = [
        str(name)
        for s in report.document["sets"].values()
        if isinstance(s, dict) and "skipped" in s
        for name in s["skipped"]
    ]
    if skipped:
        where = "listed in the JSON report" if json_path else "--json FILE lists them all"
        log(
            f"[yellow]note:[/] {len(skipped)} undecodable file(s) skipped, e.g. "
            f"{escape(skipped[0])} ({where})"
        )
    for path, what in ((json_path, "JSON"), (html_path, "HTML")):
        if path is not None:
            log(f"{what} report: {escape(str(path))}")
    log(f"gap-report took {time.monotonic() - started:.1f} s")


def _plain_table(document: dict) -> str:
    """The table as tab-separated text, for logs and pipes."""
    from ..gap import formatting
    from ..gap.split_advice import lines as split_lines

    has_refined = document["sets"]["refined"] is not None
    head = [
        "metric",
        "better",
        "synthetic vs real",
        *(["refined vs real"] if has_refined else []),
        "real vs real (floor)",
        *(["gap closed"] if has_refined else []),
    ]
    lines = ["\t".join(head)]
    for m in document["metrics"]:
        cells = [m["name"], m["better"], formatting.estimate(m["synthetic"])]
        if has_refined:
            cells.append(formatting.estimate(m["refined"]))
        cells.append(formatting.estimate(m["real_floor"]))
        if has_refined:
            cells.append(formatting.gap_closed_cell(m))
        lines.append("\t".join(cells))
    lines.extend(document["verdict"]["lines"])
    lines.extend(split_lines(document.get("gap_split")))
    return "\n".join(lines) + "\n"


class _LogStages:
    """One line per stage, for logs and CI."""

    def __call__(self, event: Event) -> None:
        if isinstance(event, Stage):
            log(f"gap-report: {event.name}")

    def close(self) -> None:
        pass


class _RichStages:
    """A progress bar per stage on a terminal."""

    def __init__(self) -> None:
        self.progress = progress_bar("{task.description}", "rate")
        self.progress.start()
        self.current = None
        self.done = 0  # the current stage's count

    def __call__(self, event: Event) -> None:
        if isinstance(event, Stage):
            if self.current is not None:
                task = self.progress.tasks[self.current]
                self.progress.update(self.current, completed=task.total)
            self.current = self.progress.add_task(event.name, total=max(event.total, 1), rate="")
            self.done = event.done
        elif isinstance(event, Progress) and self.current is not None:
            # advance, not update(completed=): rich samples the rate on every advance
            self.progress.advance(self.current, event.done - self.done)
            self.done = event.done
            speed = self.progress.tasks[self.current].speed
            self.progress.update(self.current, rate=f"{speed:.1f}/s" if speed else "")

    def close(self) -> None:
        if self.current is not None:
            self.progress.update(self.current, completed=self.progress.tasks[self.current].total)
        self.progress.stop()
