"""`refinekit COMMAND --help` reads on an 80-column terminal: every flag name whole, no line
wider than the terminal, nothing cut with an ellipsis, one style for defaults and required marks."""

import re

import pytest
import typer
from typer.testing import CliRunner

from refinekit.cli import app

COMMANDS = ["train", "refine", "export", "gap-report", "bench"]


def _help(*args: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


def _names(command: str | None) -> list[str]:
    group = typer.main.get_command(app)
    cmd = group.commands[command] if command else group  # type: ignore[attr-defined]
    return [n for p in cmd.params for n in (*p.opts, *p.secondary_opts) if n.startswith("--")]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_80_columns_with_every_flag_whole(command):
    text = _help(*([command] if command else []))
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in text
    assert "<bool>" not in text and "BOOL" not in text
    tokens = set(re.findall(r"--[a-z0-9][a-z0-9-]*", text))
    missing = [name for name in _names(command) if name not in tokens]
    assert missing == [], f"flags not shown whole: {missing}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_flag_starts_one_row_and_its_help_stays_short(command):
    """A flag and its metavar on one line; its help a few lines, not one word a line."""
    text = _help(command)
    rows = re.findall(r"^│ (--[a-z0-9-]+)", text, flags=re.M)
    assert sorted(set(rows)) == sorted(
        {"--help"} | {n for n in _names(command) if not n.startswith("--no-")}
    ), rows
    for block in re.split(r"\n(?=│ --)", text)[1:]:
        lines = [line for line in block.splitlines() if line.startswith("│ ")]
        assert len(lines) <= 6, block


def test_defaults_and_required_marks_read_the_same_everywhere():
    for command in COMMANDS:
        text = _help(command, columns=100)
        assert "(default" not in text.lower(), command
        assert not re.search(r"^│ \*", text, flags=re.M), command  # no separate asterisk column
    assert "[required]" in _help("refine") and "[required]" in _help("gap-report")
    assert "[default: 95]" in _help("refine")
    assert "[default: --copy-other]" in _help("refine", columns=100)


def test_train_help_says_whose_defaults_it_shows():
    text = " ".join(_help("train", columns=100).split())
    assert "Defaults shown are those of --refiner resnet" in text
    assert "acquisition: 1000" in text


def test_bench_mode_says_what_breakdown_does():
    text = " ".join(_help("bench", columns=100).split())
    assert "breakdown (each convolution" in text
