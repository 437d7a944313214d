"""`refinekit train`: parse flags, build a TrainConfig, call refinekit.train, show progress."""

from __future__ import annotations

import dataclasses
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..config import AUTO_ADA_BELOW, TrainConfig
from ..presets import PRESETS, REFINER_DEFAULTS
from .common import log
from .train_progress import ProgressView, report_best

_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


class RefinerKind(StrEnum):
    resnet = "resnet"
    acquisition = "acquisition"
    acquisition_resnet = "acquisition+resnet"
    histogram = "histogram"
    fda = "fda"
    colour = "colour"


class Preset(StrEnum):
    local = "local"
    gaze = "gaze"
    hand = "hand"
    tiny = "tiny"


class Psi(StrEnum):
    identity = "identity"
    mean_channels = "mean-channels"
    downsample = "downsample"


class Content(StrEnum):
    l1 = "l1"
    lowpass = "lowpass"
    nce = "nce"
    structure = "structure"


class LabelTarget(StrEnum):
    class_ = "class"
    prediction = "prediction"


class ClassConditional(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class RefinerOutput(StrEnum):
    residual = "residual"
    direct = "direct"


class GanLoss(StrEnum):
    bce = "bce"
    lsgan = "lsgan"
    hinge = "hinge"


class OnCollapse(StrEnum):
    warn = "warn"
    stop = "stop"


class Optimizer(StrEnum):
    adam = "adam"
    sgd = "sgd"


class Precision(StrEnum):
    float32 = "float32"
    bf16 = "bf16"


class Augment(StrEnum):
    auto = "auto"
    none = "none"
    diffaugment = "diffaugment"
    ada = "ada"


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


def _option(flags: str, panel: str, help: str, **kwargs: Any) -> Any:
    """A train option: its help panel, and the config's default shown (the value itself is
    None, so that a resumed run keeps its saved settings)."""
    name = flags.split("/")[0].removeprefix("--").replace("-", "_")
    return typer.Option(
        flags, help=help, rich_help_panel=panel, show_default=config_default(name), **kwargs
    )


def train(
    synthetic: Annotated[
        Path | None,
        _option(
            "--synthetic",
            DATA,
            "Synthetic images (searched recursively); their labels must survive refinement.",
            metavar="DIR",
        ),
    ] = None,
    real: Annotated[
        Path | None,
        _option("--real", DATA, "Unlabelled real images (searched recursively).", metavar="DIR"),
    ] = None,
    size: Annotated[
        tuple[int, int] | None,
        _option(
            "--size", DATA, "Training size; needed when synthetic sizes differ.", metavar="H W"
        ),
    ] = None,
    channels: Annotated[int | None, _option("--channels", DATA, "1 (gray) or 3 (RGB).")] = None,
    real_crop: Annotated[
        bool | None,
        _option(
            "--real-crop/--no-real-crop",
            DATA,
            "Random crops of real images of another size instead of resizing them.",
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        _option("--strict/--no-strict", DATA, "Stop at the first undecodable image, not skip it."),
    ] = None,
    val_fraction: Annotated[
        float | None,
        _option(
            "--val-fraction",
            DATA,
            "Share of real images held out to score checkpoints (0: none).",
        ),
    ] = None,
    refiner: Annotated[
        RefinerKind | None,
        _option(
            "--refiner",
            NETWORKS,
            "What is fitted: the SimGAN ResNet, a camera model (pixels never move), the "
            "ResNet after it, or a training-free baseline (docs/refiners.md).",
        ),
    ] = None,
    preset: Annotated[
        Preset | None,
        _option(
            "--preset",
            NETWORKS,
            "Network shapes: local (gaze refiner, 7-px discriminator field), gaze and hand "
            "(the paper's), tiny (tests).",
        ),
    ] = None,
    width: Annotated[int | None, _option("--width", NETWORKS, "Refiner feature maps.")] = None,
    blocks: Annotated[int | None, _option("--blocks", NETWORKS, "Refiner ResNet blocks.")] = None,
    kernel: Annotated[
        int | None, _option("--kernel", NETWORKS, "Refiner kernel size (odd).")
    ] = None,
    refiner_output: Annotated[
        RefinerOutput | None,
        _option(
            "--refiner-output",
            NETWORKS,
            "direct: the paper's tanh(f(x)); residual: tanh(atanh(x) + f(x)).",
        ),
    ] = None,
    lambda_reg: Annotated[
        float | None,
        _option(
            "--lambda-reg",
            LOSSES,
            "Weight of self-regularisation |psi(R(x)) - psi(x)|: raise it if labels drift.",
        ),
    ] = None,
    psi: Annotated[
        Psi | None, _option("--psi", LOSSES, "Feature map psi of self-regularisation.")
    ] = None,
    content: Annotated[
        Content | None,
        _option(
            "--content",
            LOSSES,
            "Content loss: l1, lowpass (texture may change), nce or structure (each plus l1).",
        ),
    ] = None,
    lambda_nce: Annotated[
        float | None, _option("--lambda-nce", LOSSES, "Weight of PatchNCE (--content nce).")
    ] = None,
    lambda_structure: Annotated[
        float | None,
        _option("--lambda-structure", LOSSES, "Weight of orientation loss (--content structure)."),
    ] = None,
    lambda_label: Annotated[
        float | None,
        _option(
            "--lambda-label",
            LOSSES,
            "Weight of the label loss of a frozen classifier, used when the synthetic set has "
            "class subfolders (0: off).",
        ),
    ] = None,
    lambda_label_pretrain: Annotated[
        float | None,
        _option("--lambda-label-pretrain", LOSSES, "Label loss weight in refiner pretraining."),
    ] = None,
    label_target: Annotated[
        LabelTarget | None,
        _option(
            "--label-target",
            LOSSES,
            "What the label loss keeps: the classifier's reading of x, or the folder class.",
        ),
    ] = None,
    label_warmup: Annotated[
        int | None,
        _option(
            "--label-warmup",
            LOSSES,
            "Pretraining steps over which the label weight ramps up from 0.",
        ),
    ] = None,
    class_conditional: Annotated[
        ClassConditional | None,
        _option(
            "--class-conditional",
            LOSSES,
            "Projection discriminator per class (auto: when --real has the same classes).",
        ),
    ] = None,
    classifier_steps: Annotated[
        int | None,
        _option("--classifier-steps", LOSSES, "Training steps of the label classifier."),
    ] = None,
    gan_loss: Annotated[GanLoss | None, _option("--gan-loss", LOSSES, "Adversarial loss.")] = None,
    steps: Annotated[
        int | None,
        _option("--steps", SCHEDULE, "Adversarial steps after pretraining; may grow on resume."),
    ] = None,
    batch_size: Annotated[
        int | None, _option("--batch-size", SCHEDULE, "Images per update (even).")
    ] = None,
    kg: Annotated[int | None, _option("--kg", SCHEDULE, "Refiner updates per step.")] = None,
    kd: Annotated[int | None, _option("--kd", SCHEDULE, "Discriminator updates per step.")] = None,
    pretrain_refiner_steps: Annotated[
        int | None,
        _option(
            "--pretrain-refiner-steps", SCHEDULE, "Refiner steps on self-regularisation alone."
        ),
    ] = None,
    pretrain_disc_steps: Annotated[
        int | None,
        _option("--pretrain-disc-steps", SCHEDULE, "Discriminator steps before adversarial."),
    ] = None,
    buffer_size: Annotated[
        int | None,
        _option("--buffer-size", SCHEDULE, "History buffer images (a multiple of batch/2)."),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        _option("--optimizer", SCHEDULE, "adam (beta1 0.5) or sgd (the paper's)."),
    ] = None,
    lr_refiner: Annotated[
        float | None, _option("--lr-refiner", SCHEDULE, "Refiner learning rate.")
    ] = None,
    lr_disc: Annotated[
        float | None, _option("--lr-disc", SCHEDULE, "Discriminator learning rate.")
    ] = None,
    lr_pretrain_refiner: Annotated[
        float | None,
        _option("--lr-pretrain-refiner", SCHEDULE, "Refiner learning rate in its pretraining."),
    ] = None,
    seed: Annotated[
        int | None,
        _option("--seed", SCHEDULE, "Seed of initialisation, sampling, augmentation, split."),
    ] = None,
    r1_gamma: Annotated[
        float | None,
        _option("--r1-gamma", STABILITY, "R1 gradient penalty weight on real images (0: off)."),
    ] = None,
    r1_every: Annotated[
        int | None,
        _option("--r1-every", STABILITY, "R1 every k discriminator steps, weighted by k."),
    ] = None,
    ema_decay: Annotated[
        float | None,
        _option(
            "--ema-decay",
            STABILITY,
            "Weight average used for samples, scores, refine, export (0: raw).",
        ),
    ] = None,
    grad_clip: Annotated[
        float | None,
        _option("--grad-clip", STABILITY, "Global gradient norm clip of both networks (0: off)."),
    ] = None,
    on_collapse: Annotated[
        OnCollapse | None,
        _option("--on-collapse", STABILITY, "On collapse signs: warn, or stop training."),
    ] = None,
    augment: Annotated[
        Augment | None,
        _option(
            "--augment",
            AUGMENTATION,
            f"Discriminator augmentation; auto: ada below {AUTO_ADA_BELOW} real images.",
        ),
    ] = None,
    augment_policy: Annotated[
        str | None,
        _option(
            "--augment-policy",
            AUGMENTATION,
            "Comma list of: color, translation, cutout, flip, rotate, noise.",
            metavar="LIST",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        _option("--out", RUN_FOLDER, "Run folder; an existing run is resumed.", metavar="DIR"),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON or TOML settings (keys as these flags); flags override it.",
            rich_help_panel=RUN_FOLDER,
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None, _option("--checkpoint-every", RUN_FOLDER, "Checkpoint every N steps.")
    ] = None,
    keep: Annotated[
        int | None, _option("--keep", RUN_FOLDER, "Checkpoints kept (the best one too).")
    ] = None,
    sample_every: Annotated[
        int | None, _option("--sample-every", RUN_FOLDER, "Sample grid every N steps.")
    ] = None,
    log_every: Annotated[
        int | None, _option("--log-every", RUN_FOLDER, "Log line and metrics every N steps.")
    ] = None,
    steps_per_call: Annotated[
        int | None,
        _option("--steps-per-call", EXECUTION, "Training steps per device call (unrolled)."),
    ] = None,
    precision: Annotated[
        Precision | None,
        _option("--precision", EXECUTION, "Compute precision; parameters stay float32."),
    ] = None,
) -> None:
    """Train a SimGAN refiner and patch discriminator (resumes an existing --out).

    A new run needs --synthetic, --real and --out; a resumed run keeps its saved settings, and
    flags change only what may change. Defaults shown are those of --refiner resnet; where
    another kind has its own, it follows as "; KIND: VALUE". Details of every setting:
    docs/training.md.
    """
    # Every parameter but --config is the TrainConfig field of its name (checked by
    # tests/test_settings_source.py), so the flags are this call's arguments.
    flags = {name: value for name, value in locals().items() if name != "config_file"}
    from ..config import load_config_file

    values = load_config_file(config_file) if config_file else {}
    from_file = {name for name in values if flags.get(name) is None}  # not overridden by a flag
    for name, value in flags.items():
        if value is not None:
            values[name] = (
                value.value
                if isinstance(value, Enum)
                else str(value)
                if isinstance(value, Path)
                else value
            )
    from ..training.runfolder import settings_for_run

    config = settings_for_run(
        values, source=str(config_file) if config_file else "flags", from_file=from_file
    )

    from ..runtime import setup
    from ..stop import Interrupted, StopOnSignals
    from ..training.loop import train as run_training

    setup(distributed=True, kind="train")
    view = ProgressView()
    try:
        # The CLI owns the signals: the first SIGINT/SIGTERM stops after the current call with
        # a checkpoint, a second stops now.
        with StopOnSignals() as signals:
            try:
                result = run_training(config, on_event=view, should_stop=signals.requested)
            except Interrupted as exc:
                if signals.signum is None:
                    raise
                raise signals.interrupted(str(exc)) from None
    finally:
        view.close()
    report_best(Path(config.out))
    log(
        f"done: step {result.step}; checkpoints in {Path(config.out) / 'checkpoints'}, samples in {Path(config.out) / 'samples'}"
    )
