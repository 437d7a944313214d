"""One source of settings: every TrainConfig field has its `refinekit train` flag and its row in
docs/training.md (or docs/labels.md), and every flag is a field. Adding a setting in one place
only fails here."""

import dataclasses
import re
from pathlib import Path

import typer

from refinekit.cli import app
from refinekit.config import TrainConfig

DOCS = Path(__file__).resolve().parents[1] / "docs"
INTERNAL = {"extra"}  # what training records about the data and versions, not a setting
CONFIG_FILE_ONLY = {"disc_layers", "ada_target", "ada_interval", "ada_speed"}  # --config keys
CLI_ONLY = {"--config"}  # reads the settings file itself


def _train_flags() -> dict[str, str]:
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {
        opt: param.help or ""
        for param in command.params
        for opt in param.opts
        if opt.startswith("--")
    }


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _documented() -> str:
    return (DOCS / "training.md").read_text() + (DOCS / "labels.md").read_text()


def test_every_setting_has_a_flag_with_help_and_every_flag_a_setting():
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - INTERNAL
    flags = _train_flags()
    missing = sorted(f for f in fields - CONFIG_FILE_ONLY if _flag(f) not in flags)
    assert missing == [], f"TrainConfig fields without a train flag: {missing}"
    unknown = sorted(
        o for o in flags if o not in CLI_ONLY and o[2:].replace("-", "_") not in fields
    )
    assert unknown == [], f"train flags that are no TrainConfig field: {unknown}"
    no_help = sorted(o for o, text in flags.items() if len(text) < 10)
    assert no_help == [], f"train flags without a help text: {no_help}"


def test_every_setting_is_documented_in_a_flags_table():
    text = _documented()
    rows = "\n".join(line for line in text.splitlines() if line.startswith("|"))
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - INTERNAL
    undocumented = sorted(
        f
        for f in fields
        if (f in CONFIG_FILE_ONLY and f not in text)
        or (f not in CONFIG_FILE_ONLY and not re.search(re.escape(_flag(f)) + r"\b", rows))
    )
    assert undocumented == [], (
        f"settings missing from docs/training.md or docs/labels.md: {undocumented}"
    )


def test_documented_defaults_match_the_config():
    """A docs row `| `--flag` | default | ...` states TrainConfig's default for single flags."""
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for line in _documented().splitlines():
        match = re.match(r"\| `(--[a-z0-9-]+)(?: [A-Z]+)?` \| `?([^|`]+?)`? \|", line)
        if not match:
            continue
        name = match.group(1)[2:].replace("-", "_")
        if name not in defaults or isinstance(defaults[name], dataclasses._MISSING_TYPE):
            continue
        value, stated = defaults[name], match.group(2).strip()
        if isinstance(value, bool) or value is None or isinstance(value, tuple):
            continue
        if isinstance(value, (int, float)):
            assert float(stated) == float(value), (
                f"{match.group(1)}: docs say {stated}, config {value}"
            )
        else:
            assert stated == str(value), f"{match.group(1)}: docs say {stated}, config {value}"
        checked += 1
    assert checked >= 10


def _train_command():
    return typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]


def _help_blocks(command: str) -> dict[str, str]:
    """`refinekit COMMAND --help` as rendered, one text per flag (its wrapped lines joined)."""
    from typer.testing import CliRunner

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    blocks: dict[str, str] = {}
    flag = None
    for line in result.output.splitlines():
        row = line.strip("│ ").rstrip()
        match = re.match(r"│ (--[a-z0-9-]+)", line)
        if match:
            flag = match.group(1)
            blocks[flag] = row
        elif flag and line.startswith("│ "):
            blocks[flag] += " " + row
        else:
            flag = None
    return blocks


def _as_typed(name: str, value: object) -> object:
    """How a config value reads in the help, compared as numbers where it is one."""
    if isinstance(value, bool):
        return ("--" if value else "--no-") + name.replace("_", "-")
    if isinstance(value, int | float):
        return float(value)
    return str(value)


def _parse(stated: str, like: object) -> object:
    return float(stated) if isinstance(like, float) else stated


def test_train_help_defaults_are_the_configs():
    """Every `[default: ...]` of `train --help` states TrainConfig's default (and a refiner kind's
    own value where REFINER_DEFAULTS changes it), so a help default cannot drift from the config."""
    from refinekit.presets import REFINER_DEFAULTS

    blocks = _help_blocks("train")
    defaults = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    checked = 0
    for name, value in defaults.items():
        flag = _flag(name)
        if flag not in blocks or value in (None, "") or isinstance(value, tuple | dict):
            continue
        match = re.search(r"\[default: ([^\]]*)\]", blocks[flag])
        assert match, f"train {flag}: no [default: ...] in its help"
        stated, *kinds = [part.strip() for part in match.group(1).split(";")]
        expected = _as_typed(name, value)
        assert _parse(stated, expected) == expected, f"{flag}: help says {stated}, config {value}"
        for kind, changes in REFINER_DEFAULTS.items():
            if name in changes:
                own = _as_typed(name, changes[name])
                assert any(
                    k.startswith(f"{kind}: ") and _parse(k[len(kind) + 2 :], own) == own
                    for k in kinds
                ), f"{flag}: help lacks the {kind} default {changes[name]}"
        checked += 1
    assert checked >= 30


def test_train_help_states_no_default_in_its_prose():
    """Defaults are only in the generated `[default: ...]`; one typed into a help text drifts."""
    typed = sorted(
        opt
        for param in _train_command().params
        for opt in param.opts
        if "default" in (getattr(param, "help", None) or "").lower()
    )
    assert typed == [], f"train flags whose help text states a default by hand: {typed}"


def test_cli_choices_are_the_configs():
    """An enum of the CLI lists exactly the values config.py accepts."""
    from refinekit.cli.help import choices
    from refinekit.config import CHOICES, ON_COLLAPSE, PRECISIONS
    from refinekit.presets import PRESETS, REFINERS

    expected = {**CHOICES, "preset": tuple(PRESETS), "on_collapse": ON_COLLAPSE}
    assert expected["refiner"] == REFINERS
    params = {p.name: p for p in _train_command().params}
    for name, allowed in expected.items():
        assert sorted(choices(params[name])) == sorted(allowed), f"train {_flag(name)}"
    bench = {
        p.name: p
        for p in typer.main.get_command(app).commands["bench"].params  # type: ignore[attr-defined]
    }
    assert sorted(choices(bench["preset"])) == sorted(PRESETS)
    assert sorted(choices(bench["precision"])) == sorted(PRECISIONS)
