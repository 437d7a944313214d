"""What every command shares: the console, terminal detection, and error -> exit code."""

from __future__ import annotations

import sys

from rich.console import Console

# Messages and progress go to stderr, so stdout stays clean for --json output.
console = Console(stderr=True, highlight=False)


def interactive() -> bool:
    """True when a person is watching a terminal (rich progress bars), False in logs and CI."""
    return console.is_terminal and not console.is_dumb_terminal


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
