"""The `refinekit` command line: Typer only. Each command is a thin wrapper around a library
function; this module maps refinekit's exceptions to one-line messages and exit codes.

JAX is imported inside the commands, so `refinekit --help` is instant.
"""

from __future__ import annotations

import sys

import typer

from .. import __version__
from .common import debug_requested, fail
from .help import HelpCommand, HelpGroup

app = typer.Typer(
    name="refinekit",
    cls=HelpGroup,
    help="Refine synthetic images to look real (SimGAN), and measure the synthetic-to-real gap.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"refinekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="Show the full traceback when a command fails."
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """refinekit: train a SimGAN refiner, refine folders, report the domain gap."""


def _register() -> None:
    from . import bench, export, gap, refine, resample, train

    app.command("train", cls=HelpCommand)(train.train)
    app.command("refine", cls=HelpCommand)(refine.refine)
    app.command("export", cls=HelpCommand)(export.export)
    app.command("gap-report", cls=HelpCommand)(gap.gap_report)
    app.command("bench", cls=HelpCommand)(bench.bench)
    app.command("resample", cls=HelpCommand)(resample.resample)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 usage error, 1 failure, 130/143 interrupted)."""
    from ..errors import RefinekitError

    click = _click()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        # Not standalone: click's own errors come back here and get the one-line form too,
        # instead of Typer's boxed panel.
        code = app(args=argv, prog_name="refinekit", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.NoArgsIsHelpError as exc:  # bare `refinekit` or `refinekit train`
        exc.show()
        return exc.exit_code
    except click.exceptions.UsageError as exc:  # a bad flag or value, from click's parsing
        return fail(_usage_message(exc), 2)
    except click.exceptions.ClickException as exc:
        return fail(exc.format_message(), exc.exit_code)
    except typer.Abort:
        return fail("interrupted", 130)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except RefinekitError as exc:
        if debug_requested(argv):
            raise
        return fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        return fail("interrupted", 130)
    except Exception as exc:  # a bug: one line unless --debug
        if debug_requested(argv):
            raise
        return fail(
            f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1
        )
    return 0


def _click():
    """click, as Typer (>= 0.26, required in pyproject.toml) vendors it: refinekit imports only
    from typer."""
    from typer import _click as click

    return click


def _usage_message(exc) -> str:
    """Click's message on one line, with the command it concerns and where help is."""
    message = " ".join(exc.format_message().split())
    path = exc.ctx.command_path if exc.ctx is not None else "refinekit"
    return f"{path}: {message} (see '{path} --help')"


def entry() -> None:
    sys.exit(main())
