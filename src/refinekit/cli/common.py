"""What every command shares: the console, terminal detection, and error -> exit code."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

# Messages and progress go to stderr, so stdout stays clean for --json output.
console = Console(stderr=True, highlight=False)


def interactive() -> bool:
    """True when a person is watching a terminal (rich progress bars), False in logs and CI."""
    return console.is_terminal and not console.is_dumb_terminal


def progress_bar(label: str, *fields: str):
    """The one progress bar of every command: label, bar, done/total, elapsed time, ETA, then
    the task's text `fields` (rate, losses, ...). `label` may use `{task.description}` or fields.

    The fields come last and are capped in width, so a long loss line never pushes the count
    and the ETA off a narrow terminal."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Column

    # Without a width limit a long field makes rich drop the bar, count and ETA altogether on
    # an 80-column terminal; capped, the field is cut with an ellipsis instead.
    width = max(20, console.width // 2 - 10)
    columns = [
        TextColumn(
            f"{{task.fields[{name}]}}",
            table_column=Column(no_wrap=True, overflow="ellipsis", max_width=width),
        )
        for name in fields
    ]
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *columns,
        console=console,
        transient=False,
    )


def fail(message: str, code: int) -> int:
    console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    return code


def log(message: str) -> None:
    """A plain line on stderr (works with or without a terminal)."""
    console.print(message, soft_wrap=True, highlight=False)


def debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv


def stdout_write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def check_run(run: Path, flag: str, step: str | None = None) -> None:
    """The cheap checks of a run folder named on the command line, done before any input is
    scanned or JAX imported: it is a folder, it holds checkpoints, and `--step N` is one of
    them. Each failure is a UsageError (exit 2) naming the flag; the full checks (complete,
    readable checkpoints) come when the refiner is loaded."""
    from ..errors import UsageError
    from ..training.checkpoint import checkpoint_dir
    from ..training.selection import parse_step

    requested = parse_step(step)
    if not run.is_dir():
        raise UsageError(f"{flag} {run}: no such run folder")
    folder = checkpoint_dir(run)
    try:
        steps = sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    except OSError:
        steps = []
    if not steps:
        raise UsageError(
            f"{flag} {run}: not a training run (no checkpoint in {folder}); train first, or "
            "check the path"
        )
    if isinstance(requested, int) and requested not in steps:
        raise UsageError(
            f"--step {requested}: no such checkpoint in {run} "
            f"(available: {', '.join(map(str, steps))})"
        )
