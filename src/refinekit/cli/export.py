"""`refinekit export RUN FILE`: a thin wrapper around `refinekit.inference.export_refiner`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import check_run, log


def export(
    run: Annotated[
        Path,
        typer.Argument(
            metavar="RUN",
            help="Training run folder to export the refiner from.",
            show_default=False,
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help="File to write: the refiner's config and parameters, for "
            "'refinekit refine --model FILE'.",
            show_default=False,
        ),
    ],
    step: Annotated[
        str | None,
        typer.Option(
            metavar="STEP",
            help="Checkpoint: best (the best healthy one), latest, or a step number.",
            show_default="best",
        ),
    ] = None,
) -> None:
    """Export a trained refiner to one small file, to share it or refine without the run folder."""
    from ..inference.refiner import export_refiner
    from ..runtime import setup
    from ..training.selection import parse_step, resolve

    check_run(run, "RUN", step)
    setup()
    choice = resolve(run, parse_step(step))
    written = Path(export_refiner(run, file, step=choice.step))
    size = written.stat().st_size
    which = f"step {choice.step} ({choice.reason})"
    log(f"exported {which} of {escape(str(run))} to {escape(str(written))} ({size / 1024:.1f} KiB)")
    if choice.warning:
        log(f"[yellow]warning:[/] {escape(choice.warning)}")
