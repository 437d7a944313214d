"""`refinekit train`: parse flags, build a TrainConfig, call refinekit.train, show progress."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from ..config import AUTO_ADA_BELOW
from ..presets import FINE_TUNE_DEFAULTS
from .common import log
from .train_options import (
    AUGMENTATION,
    DATA,
    EXECUTION,
    LOSSES,
    NETWORKS,
    RUN_FOLDER,
    SCHEDULE,
    STABILITY,
    Augment,
    ClassConditional,
    Content,
    DownstreamChoice,
    GanLoss,
    LabelTarget,
    OnCollapse,
    Optimizer,
    Precision,
    Preset,
    Psi,
    RefinerKind,
    RefinerOutput,
    option,
)
from .train_progress import ProgressView, report_best

# The schedule --init-from brings where it is not given, in the flag's help.
_FINE_TUNE = "--steps {steps}, pretraining {pretrain_refiner_steps} + {pretrain_disc_steps}".format(
    **FINE_TUNE_DEFAULTS
)


def train(
    synthetic: Annotated[
        Path | None,
        option(
            "--synthetic",
            DATA,
            "Synthetic images (searched recursively); their labels must survive refinement.",
            metavar="DIR",
        ),
    ] = None,
    real: Annotated[
        Path | None,
        option("--real", DATA, "Unlabelled real images (searched recursively).", metavar="DIR"),
    ] = None,
    size: Annotated[
        tuple[int, int] | None,
        option("--size", DATA, "Training size; needed when synthetic sizes differ.", metavar="H W"),
    ] = None,
    channels: Annotated[int | None, option("--channels", DATA, "1 (gray) or 3 (RGB).")] = None,
    real_crop: Annotated[
        bool | None,
        option(
            "--real-crop/--no-real-crop",
            DATA,
            "Random crops of real images of another size instead of resizing them.",
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        option("--strict/--no-strict", DATA, "Stop at the first undecodable image, not skip it."),
    ] = None,
    val_fraction: Annotated[
        float | None,
        option(
            "--val-fraction",
            DATA,
            "Share of real images held out to score checkpoints (0: none).",
        ),
    ] = None,
    downstream: Annotated[
        DownstreamChoice | None,
        option(
            "--downstream",
            DATA,
            "Score checkpoints by a small CNN trained on refined images, tested on held-out "
            "real ones (auto: when the real set has the synthetic class folders).",
        ),
    ] = None,
    refiner: Annotated[
        RefinerKind | None,
        option(
            "--refiner",
            NETWORKS,
            "auto: fit the camera model and the ResNet, keep the better; or one kind "
            "(docs/refiners.md).",
        ),
    ] = None,
    preset: Annotated[
        Preset | None,
        option(
            "--preset",
            NETWORKS,
            "Network shapes: local (gaze refiner, 7-px discriminator field), gaze and hand "
            "(the paper's), tiny (tests).",
        ),
    ] = None,
    width: Annotated[int | None, option("--width", NETWORKS, "Refiner feature maps.")] = None,
    blocks: Annotated[int | None, option("--blocks", NETWORKS, "Refiner ResNet blocks.")] = None,
    kernel: Annotated[
        int | None, option("--kernel", NETWORKS, "Refiner kernel size (odd).")
    ] = None,
    refiner_output: Annotated[
        RefinerOutput | None,
        option(
            "--refiner-output",
            NETWORKS,
            "direct: the paper's tanh(f(x)); residual: tanh(atanh(x) + f(x)).",
        ),
    ] = None,
    init_from: Annotated[
        Path | None,
        option(
            "--init-from",
            NETWORKS,
            "Start from another run's best checkpoint, or an export: the parts that fit are "
            f"kept, the others reset; a shorter schedule unless given ({_FINE_TUNE}).",
            metavar="RUN|FILE",
        ),
    ] = None,
    freeze_refiner_steps: Annotated[
        int | None,
        option(
            "--freeze-refiner-steps",
            NETWORKS,
            "Hold the refiner fixed in the first N adversarial steps (the discriminator adapts).",
            metavar="N",
        ),
    ] = None,
    freeze_disc_layers: Annotated[
        int | None,
        option(
            "--freeze-disc-layers",
            NETWORKS,
            "Never update the discriminator's first K convolutions (FreezeD).",
            metavar="K",
        ),
    ] = None,
    lambda_reg: Annotated[
        float | None,
        option(
            "--lambda-reg",
            LOSSES,
            "Weight of self-regularisation |psi(R(x)) - psi(x)|: raise it if labels drift.",
        ),
    ] = None,
    lambda_stats: Annotated[
        float | None,
        option(
            "--lambda-stats",
            LOSSES,
            "Weight of matching how images vary (brightness, contrast, sharpness, noise, "
            "saturation per image) to the real set (0: off).",
        ),
    ] = None,
    psi: Annotated[
        Psi | None, option("--psi", LOSSES, "Feature map psi of self-regularisation.")
    ] = None,
    content: Annotated[
        Content | None,
        option(
            "--content",
            LOSSES,
            "Content loss: l1, lowpass (texture may change), nce or structure (each plus l1).",
        ),
    ] = None,
    lambda_nce: Annotated[
        float | None, option("--lambda-nce", LOSSES, "Weight of PatchNCE (--content nce).")
    ] = None,
    lambda_structure: Annotated[
        float | None,
        option("--lambda-structure", LOSSES, "Weight of orientation loss (--content structure)."),
    ] = None,
    lambda_label: Annotated[
        float | None,
        option(
            "--lambda-label",
            LOSSES,
            "Weight of the label loss of a frozen classifier, used when the synthetic set has "
            "class subfolders (0: off).",
        ),
    ] = None,
    lambda_label_pretrain: Annotated[
        float | None,
        option("--lambda-label-pretrain", LOSSES, "Label loss weight in refiner pretraining."),
    ] = None,
    label_target: Annotated[
        LabelTarget | None,
        option(
            "--label-target",
            LOSSES,
            "What the label loss keeps: the classifier's reading of x, or the folder class.",
        ),
    ] = None,
    label_warmup: Annotated[
        int | None,
        option(
            "--label-warmup",
            LOSSES,
            "Pretraining steps over which the label weight ramps up from 0.",
        ),
    ] = None,
    class_conditional: Annotated[
        ClassConditional | None,
        option(
            "--class-conditional",
            LOSSES,
            "Projection discriminator per class (auto: when --real has the same classes).",
        ),
    ] = None,
    classifier_steps: Annotated[
        int | None,
        option("--classifier-steps", LOSSES, "Training steps of the label classifier."),
    ] = None,
    gan_loss: Annotated[GanLoss | None, option("--gan-loss", LOSSES, "Adversarial loss.")] = None,
    steps: Annotated[
        int | None,
        option("--steps", SCHEDULE, "Adversarial steps after pretraining; may grow on resume."),
    ] = None,
    batch_size: Annotated[
        int | None, option("--batch-size", SCHEDULE, "Images per update (even).")
    ] = None,
    kg: Annotated[int | None, option("--kg", SCHEDULE, "Refiner updates per step.")] = None,
    kd: Annotated[int | None, option("--kd", SCHEDULE, "Discriminator updates per step.")] = None,
    pretrain_refiner_steps: Annotated[
        int | None,
        option("--pretrain-refiner-steps", SCHEDULE, "Refiner steps on self-regularisation alone."),
    ] = None,
    pretrain_disc_steps: Annotated[
        int | None,
        option("--pretrain-disc-steps", SCHEDULE, "Discriminator steps before adversarial."),
    ] = None,
    buffer_size: Annotated[
        int | None,
        option("--buffer-size", SCHEDULE, "History buffer images (a multiple of batch/2)."),
    ] = None,
    optimizer: Annotated[
        Optimizer | None,
        option("--optimizer", SCHEDULE, "adam (beta1 0.5) or sgd (the paper's)."),
    ] = None,
    lr_refiner: Annotated[
        float | None, option("--lr-refiner", SCHEDULE, "Refiner learning rate.")
    ] = None,
    lr_disc: Annotated[
        float | None, option("--lr-disc", SCHEDULE, "Discriminator learning rate.")
    ] = None,
    lr_pretrain_refiner: Annotated[
        float | None,
        option("--lr-pretrain-refiner", SCHEDULE, "Refiner learning rate in its pretraining."),
    ] = None,
    seed: Annotated[
        int | None,
        option("--seed", SCHEDULE, "Seed of initialisation, sampling, augmentation, split."),
    ] = None,
    r1_gamma: Annotated[
        float | None,
        option("--r1-gamma", STABILITY, "R1 gradient penalty weight on real images (0: off)."),
    ] = None,
    r1_every: Annotated[
        int | None,
        option("--r1-every", STABILITY, "R1 every k discriminator steps, weighted by k."),
    ] = None,
    ema_decay: Annotated[
        float | None,
        option(
            "--ema-decay",
            STABILITY,
            "Weight average used for samples, scores, refine, export (0: raw).",
        ),
    ] = None,
    grad_clip: Annotated[
        float | None,
        option("--grad-clip", STABILITY, "Global gradient norm clip of both networks (0: off)."),
    ] = None,
    on_collapse: Annotated[
        OnCollapse | None,
        option("--on-collapse", STABILITY, "On collapse signs: warn, or stop training."),
    ] = None,
    augment: Annotated[
        Augment | None,
        option(
            "--augment",
            AUGMENTATION,
            f"Discriminator augmentation; auto: ada below {AUTO_ADA_BELOW} real images.",
        ),
    ] = None,
    augment_policy: Annotated[
        str | None,
        option(
            "--augment-policy",
            AUGMENTATION,
            "Comma list of: color, translation, cutout, flip, rotate, noise.",
            metavar="LIST",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        option("--out", RUN_FOLDER, "Run folder; an existing run is resumed.", metavar="DIR"),
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
        int | None, option("--checkpoint-every", RUN_FOLDER, "Checkpoint every N steps.")
    ] = None,
    keep: Annotated[
        int | None, option("--keep", RUN_FOLDER, "Checkpoints kept (the best one too).")
    ] = None,
    sample_every: Annotated[
        int | None, option("--sample-every", RUN_FOLDER, "Sample grid every N steps.")
    ] = None,
    log_every: Annotated[
        int | None, option("--log-every", RUN_FOLDER, "Log line and metrics every N steps.")
    ] = None,
    steps_per_call: Annotated[
        int | None,
        option("--steps-per-call", EXECUTION, "Training steps per device call (unrolled)."),
    ] = None,
    precision: Annotated[
        Precision | None,
        option("--precision", EXECUTION, "Compute precision; parameters stay float32."),
    ] = None,
) -> None:
    """Fit a refiner to the real images (resumes an existing --out).

    A new run needs --synthetic, --real and --out; a resumed run keeps its saved settings, and
    flags change only what may change. Defaults shown are those of --refiner resnet (auto fits
    it and the camera model, each with its own); where another kind has its own, it follows as
    "; KIND: VALUE". Details of every setting: docs/training.md.
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
    from ..training.transfer import check_before_start

    setup(distributed=True, kind="train")
    # After setup (reading a run's checkpoints starts JAX), before the run folder is made.
    check_before_start(config)
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
