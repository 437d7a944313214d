"""`refinekit export RUN FILE`: a thin wrapper around `refinekit.inference.export_refiner`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import log


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
            help="File to write: a self-contained refiner (its config and parameters, no "
            "optimizer state or history buffer) that 'refinekit refine --model FILE' loads "
            "without the run folder.",
            show_default=False,
        ),
    ],
    step: Annotated[
        int | None,
        typer.Option(help="Checkpoint step to export instead of the latest one."),
    ] = None,
) -> None:
    """Export a trained refiner to one small file, to share it or refine without the run folder."""
    from ..inference import export_refiner
    from ..runtime import setup

    setup()
    written = Path(export_refiner(run, file, step=step))
    size = written.stat().st_size
    which = f"step {step}" if step is not None else "the latest checkpoint"
    log(f"exported {which} of {escape(str(run))} to {escape(str(written))} ({size / 1024:.1f} KiB)")
