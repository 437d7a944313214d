"""`refinekit train`'s options: choices, help panels and `[default: ...]` texts, all generated
from the config (config.py, presets.py), so the help cannot drift from the settings."""

from __future__ import annotations

import dataclasses
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeAlias

import typer

from ..config import (
    AUGMENTS,
    CLASS_CONDITIONAL,
    CONTENTS,
    DOWNSTREAM,
    GAN_LOSSES,
    LABEL_TARGETS,
    ON_COLLAPSE,
    OPTIMIZERS,
    PRECISIONS,
    PSI_CHOICES,
    REFINER_OUTPUTS,
    TrainConfig,
)
from ..presets import PRESETS, REFINER_DEFAULTS, REFINERS


def _choices(name: str, values: tuple[str, ...]) -> type[StrEnum]:
    """A Typer choice from a config tuple (member names are the values made identifiers)."""
    members = {
        v.replace("-", "_").replace("+", "_") + ("_" if v == "class" else ""): v for v in values
    }
    return StrEnum(name, members)  # type: ignore[return-value]


if TYPE_CHECKING:  # to a type checker each is a StrEnum; Typer reads the generated members
    RefinerKind: TypeAlias = StrEnum
    DownstreamChoice: TypeAlias = StrEnum
    Preset: TypeAlias = StrEnum
    Psi: TypeAlias = StrEnum
    Content: TypeAlias = StrEnum
    LabelTarget: TypeAlias = StrEnum
    ClassConditional: TypeAlias = StrEnum
    RefinerOutput: TypeAlias = StrEnum
    GanLoss: TypeAlias = StrEnum
    OnCollapse: TypeAlias = StrEnum
    Optimizer: TypeAlias = StrEnum
    Precision: TypeAlias = StrEnum
    Augment: TypeAlias = StrEnum
else:
    RefinerKind = _choices("RefinerKind", REFINERS)
    Preset = _choices("Preset", tuple(PRESETS))
    Psi = _choices("Psi", PSI_CHOICES)
    Content = _choices("Content", CONTENTS)
    LabelTarget = _choices("LabelTarget", LABEL_TARGETS)
    ClassConditional = _choices("ClassConditional", CLASS_CONDITIONAL)
    RefinerOutput = _choices("RefinerOutput", REFINER_OUTPUTS)
    GanLoss = _choices("GanLoss", GAN_LOSSES)
    OnCollapse = _choices("OnCollapse", ON_COLLAPSE)
    Optimizer = _choices("Optimizer", OPTIMIZERS)
    Precision = _choices("Precision", PRECISIONS)
    Augment = _choices("Augment", AUGMENTS)
    DownstreamChoice = _choices("DownstreamChoice", DOWNSTREAM)

_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


# The help panels, in this order in `refinekit train --help`.
DATA = "Data"
NETWORKS = "Refiner and networks"
LOSSES = "Losses and labels"
SCHEDULE = "Schedule"
STABILITY = "Stability"
AUGMENTATION = "Augmentation"
RUN_FOLDER = "Run folder"
EXECUTION = "Execution"


def _shown(name: str, value: object) -> str:
    """A setting's value as a person types it on the command line."""
    if isinstance(value, bool):
        return f"--{name.replace('_', '-')}" if value else f"--no-{name.replace('_', '-')}"
    if isinstance(value, float):
        return f"{value:g}".replace("e-0", "e-").replace("e+0", "e+")
    if isinstance(value, tuple | list):
        return " ".join(str(v) for v in value)
    return str(value)


def _per_preset(key: str) -> str:
    """A refiner shape's default per preset, e.g. 'preset's: local/gaze 4, hand 10, tiny 1'."""
    by_value: dict[object, list[str]] = {}
    default = _FIELD_DEFAULTS["preset"]
    for preset, values in sorted(PRESETS.items(), key=lambda item: item[0] != default):
        by_value.setdefault(values[key], []).append(preset)
    return "preset's: " + ", ".join(f"{'/'.join(p)} {v}" for v, p in by_value.items())


# What `[default: ...]` says of a setting whose TrainConfig default is None (it follows another).
_UNSET = {
    "width": lambda: _per_preset("width"),
    "blocks": lambda: _per_preset("blocks"),
    "kernel": lambda: _per_preset("kernel"),
    "size": lambda: "the synthetic images' size",
    "channels": lambda: "the synthetic images'",
    "buffer_size": lambda: f"{TrainConfig(batch_size=2).history_size // 2} x --batch-size",
    "lr_pretrain_refiner": lambda: "--lr-refiner's",
    "lambda_label_pretrain": lambda: "--lambda-label's",
    "label_warmup": lambda: "half the refiner pretraining on RGB, 0 on gray",
}


def config_default(name: str) -> str:
    """The `[default: ...]` text of a train flag, generated from TrainConfig's field default
    and REFINER_DEFAULTS (a refiner kind's own value follows, e.g. '2000; acquisition: 1000'),
    so the help cannot drift from the config. '' for the folders, which have none."""
    value = _FIELD_DEFAULTS.get(name)
    if value is None:
        text = _UNSET[name]() if name in _UNSET else ""  # a setting that follows another
    else:
        text = _shown(name, value) if value != "" else ""
    kinds = [
        f"{kind}: {_shown(name, changes[name])}"
        for kind, changes in REFINER_DEFAULTS.items()
        if name in changes
    ]
    return "; ".join([text, *kinds]) if text else ""


def option(flags: str, panel: str, help: str, **kwargs: Any) -> Any:
    """A train option: its help panel, and the config's default shown (the value itself is
    None, so that a resumed run keeps its saved settings)."""
    name = flags.split("/")[0].removeprefix("--").replace("-", "_")
    return typer.Option(
        flags, help=help, rich_help_panel=panel, show_default=config_default(name), **kwargs
    )
