"""`refinekit resample`: a thin wrapper around `refinekit.gap.resample.resample_sets`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from .common import log

SETS = "Image sets"
OUTPUT = "Output"


class By(StrEnum):
    auto = "auto"
    classes = "classes"
    content = "content"


def resample(
    synthetic: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="Synthetic images to weight: a folder (searched recursively).",
            show_default=False,
            rich_help_panel=SETS,
        ),
    ],
    real: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="Real images whose content mix the weights restore.",
            show_default=False,
            rich_help_panel=SETS,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            metavar="FILE",
            help="JSON file to write: a weight per synthetic image and the resampled list.",
            show_default=False,
            rich_help_panel=OUTPUT,
        ),
    ],
    list_path: Annotated[
        Path | None,
        typer.Option(
            "--list",
            metavar="FILE",
            help="Also write the resampled list here, one relative path per line.",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    by: Annotated[
        By,
        typer.Option(
            help="What to match: class shares (class folders in both sets), content "
            "(coarse layout, not the look), or auto (classes when both sets have them).",
            rich_help_panel=OUTPUT,
        ),
    ] = By.auto,
    count: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Paths in the resampled list.",
            show_default="as many as synthetic images",
            rich_help_panel=OUTPUT,
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(min=0, help="Seed of the folds and the draw.", rich_help_panel=OUTPUT),
    ] = 0,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Stop at the first undecodable image instead of skipping it.",
            rich_help_panel=SETS,
        ),
    ] = False,
) -> None:
    """Weight the synthetic images so their content mix matches the real set's.

    Weights are p(real|x) / p(syn|x) from a domain classifier that sees class folders or the
    coarse layout, not the look; clipped, mean 1. Train on the resampled list (or with the
    weights) to close the distribution part of the gap (docs/gap-report.md).
    """
    from ..gap.resample import resample_sets, summary_line

    result = resample_sets(
        synthetic, real, out, list_path, by=by.value, count=count, seed=seed, strict=strict
    )
    log(escape(summary_line(result)))
    log(f"weights: {escape(str(out))}")
    if list_path is not None:
        log(f"resampled list: {escape(str(list_path))}")
