"""How every command's --help looks: options grouped in panels, each flag name whole on one
line however narrow the terminal, and one style for what follows the help text:
`[choices: ...]`, `[range: ...]`, `[default: ...]`, `[required]`.

Typer's own layout squeezes the flag column on an 80-column terminal (names cut with an
ellipsis, help wrapped to a few words a line); this one gives the flags the room they need and
the help the rest. The text is rendered to a string so click prints it where it prints help
(stdout for --help, stderr for a bare command).
"""

from __future__ import annotations

import inspect
import io
import re
import shutil
import sys
from enum import Enum
from typing import Any, get_args

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer import _click as click
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

MAX_WIDTH = 100  # wider terminals still get lines a person can read
FLAG_COLUMN_MAX = 32  # a longer flag + metavar puts its metavar on the next line
OPTIONS_PANEL = "Options"
ARGUMENTS_PANEL = "Arguments"


def width() -> int:
    """The terminal's columns (COLUMNS wins, 80 when not a terminal), at most MAX_WIDTH."""
    return max(40, min(shutil.get_terminal_size((80, 24)).columns, MAX_WIDTH))


def _metavar(param: click.Parameter) -> str:
    if isinstance(param, TyperOption) and param.is_flag:
        return ""
    if param.metavar:
        return param.metavar
    if not isinstance(param, TyperOption | TyperArgument):
        return "VALUE"
    desc = param.type_descriptor
    if desc.is_choice:
        return "NAME"
    if desc.is_tuple:
        return " ".join(_type_name(arg) for arg in get_args(desc.annotation))
    return _type_name(desc.annotation)


def _type_name(annotation: Any) -> str:
    name = getattr(annotation, "__name__", str(annotation))
    return {"int": "INT", "float": "FLOAT", "Path": "PATH", "bool": "BOOL"}.get(name, "TEXT")


def _flags(param: click.Parameter) -> str:
    """The names a person types: `--json`, `--strict / --no-strict`, or an argument's IN."""
    if not isinstance(param, TyperOption):
        return _metavar(param)
    names = " / ".join([", ".join(param.opts), *param.secondary_opts])
    metavar = _metavar(param)
    if not metavar:
        return names
    if len(names) + 1 + len(metavar) > FLAG_COLUMN_MAX:
        return f"{names}\n  {metavar}"
    return f"{names} {metavar}"


def choices(param: click.Parameter) -> tuple[str, ...]:
    """An option's choices as typed on the command line (empty when it takes any value)."""
    desc = getattr(param, "type_descriptor", None)
    if desc is None or not desc.is_choice:
        return ()
    return tuple(str(c.value if isinstance(c, Enum) else c) for c in desc.choices or ())


def _range(param: click.Parameter) -> str:
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def default_text(param: click.Parameter) -> str:
    """What `[default: ...]` says for a parameter ('' for none): a string given as
    show_default (a computed or generated default), else the default value itself."""
    show = getattr(param, "show_default", False)
    if isinstance(show, str):
        return show
    if not show or isinstance(param, TyperArgument):
        return ""
    value = param.default
    if value is None or callable(value):
        return ""
    if isinstance(param, TyperOption) and param.is_flag:
        if param.secondary_opts:  # a --x/--no-x pair: the one that is on by default
            return param.opts[0] if value else param.secondary_opts[0]
        return ""  # a plain flag is off unless given
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value)
    return str(value)


def _details(param: click.Parameter, columns: int) -> Text:
    """The help text, then its notes, wrapped to `columns`; a note never breaks inside."""
    notes = []
    if choices(param):
        notes.append(f"[choices: {', '.join(choices(param))}]")
    if _range(param):
        notes.append(f"[range: {_range(param)}]")
    if default_text(param):
        notes.append(f"[default: {default_text(param)}]")
    if param.required:
        notes.append("[required]")
    # A note that does not fit on the line starts the next one; one longer than a line is
    # wrapped between its words like the help text.
    pieces = [(word, "") for word in param_help(param).split()]
    for note in notes:
        style = "red" if note == "[required]" else "dim"
        words = [note] if len(note) <= columns else note.split()
        pieces += [(word, style) for word in words]
    text, line = Text(), 0
    for word, style in pieces:
        if line and line + 1 + len(word) > columns:
            text.append("\n")
            line = 0
        elif line:
            text.append(" ")
            line += 1
        text.append(word, style=style)
        line += len(word)
    return text


def param_help(param: click.Parameter) -> str:
    return getattr(param, "help", None) or ""


def _panels(params: list[click.Parameter]) -> list[tuple[str, list[click.Parameter]]]:
    """Panels in the order their first parameter appears; arguments first, the untitled
    options (--help at least) last."""
    panels: dict[str, list[click.Parameter]] = {}
    for param in params:
        if getattr(param, "hidden", False):
            continue
        if isinstance(param, TyperOption):
            name = getattr(param, "rich_help_panel", None) or OPTIONS_PANEL
        else:
            name = getattr(param, "rich_help_panel", None) or ARGUMENTS_PANEL
        panels.setdefault(name, []).append(param)
    order = sorted(
        panels, key=lambda n: (n != ARGUMENTS_PANEL, n == OPTIONS_PANEL and len(panels) > 1)
    )
    return [(name, panels[name]) for name in order]


def _table(rows: list[tuple[str, Text]], left: int) -> Table:
    table = Table(box=None, show_header=False, expand=True, padding=(0, 1), pad_edge=False)
    table.add_column(no_wrap=True, width=left, style="bold cyan")
    table.add_column(ratio=1, overflow="fold")
    for name, help_text in rows:
        table.add_row(name, help_text)
    return table


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n") if p.strip()]


def render(command: click.Command, ctx: click.Context) -> str:
    """The whole help page of a command or group, as text for click to print."""
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width(),
        force_terminal=sys.stdout.isatty(),
        highlight=False,
        soft_wrap=False,
    )
    usage = re.sub(r"\{([^}]*)\}", r"\1", command.get_usage(ctx))  # {IN} -> IN
    parts: list[RenderableType] = [Padding(Text(usage, style="bold"), (1, 1))]
    for paragraph in _paragraphs(command.help or ""):
        parts.append(Padding(Text(paragraph), (0, 1, 1, 1)))
    params = command.get_params(ctx)
    names = {id(p): _flags(p) for p in params}
    left = min(
        FLAG_COLUMN_MAX,
        max((len(line) for n in names.values() for line in n.splitlines()), default=8),
    )
    columns = console.width - 4 - left - 2  # panel border and padding, column gap
    for title, members in _panels(params):
        rows = [(names[id(p)], _details(p, columns)) for p in members]
        parts.append(Panel(_table(rows, left), title=title, title_align="left", border_style="dim"))
    if isinstance(command, TyperGroup):
        subcommands = [command.get_command(ctx, n) for n in command.list_commands(ctx)]
        rows = [
            (sub.name or "", Text(_paragraphs(sub.help or "")[0] if sub.help else ""))
            for sub in subcommands
            if sub is not None and not sub.hidden
        ]
        widest = max((len(name) for name, _ in rows), default=8)
        parts.append(
            Panel(_table(rows, widest), title="Commands", title_align="left", border_style="dim")
        )
    for paragraph in _paragraphs(command.epilog or ""):
        parts.append(Padding(Text(paragraph), (1, 1, 0, 1)))
    console.print(Group(*parts))
    return buffer.getvalue()


class HelpCommand(TyperCommand):
    """A Typer command whose --help is `render`'s."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(render(self, ctx))


class HelpGroup(TyperGroup):
    """The `refinekit` group, with the same help layout as its commands."""

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write(render(self, ctx))
