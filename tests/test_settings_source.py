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
