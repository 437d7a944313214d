"""`refinekit train`: parse flags, build a TrainConfig, call refinekit.train.train, show progress."""

from __future__ import annotations

from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .common import log
from .train_progress import ProgressView, report_best


class RefinerKind(StrEnum):
    resnet = "resnet"
    acquisition = "acquisition"
    acquisition_resnet = "acquisition+resnet"


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


class Augment(StrEnum):
    auto = "auto"
    none = "none"
    diffaugment = "diffaugment"
    ada = "ada"


def train(
    synthetic: Annotated[
        Path | None,
        typer.Option(
            "--synthetic",
            help="Folder of synthetic images (searched recursively); their labels are what refinement must keep.",
        ),
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option("--real", help="Folder of unlabelled real images (searched recursively)."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Run folder; an existing run is resumed.")
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="JSON or TOML file with settings (same names as these flags); flags override it.",
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(
            "--steps",
            help="Adversarial steps after pretraining (default 2000). May grow when resuming.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per update, even (default 32).")
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed", help="Random seed for initialisation, sampling and augmentation (default 0)."
        ),
    ] = None,
    refiner: Annotated[
        RefinerKind | None,
        typer.Option(
            "--refiner",
            help="What is trained: resnet (default: the SimGAN refiner), acquisition (a camera model "
            "fitted to the real set: blur, resolution, tone, colour, vignetting, noise, bit depth; "
            "pixels never move) or acquisition+resnet (the ResNet refines the camera model's output).",
        ),
    ] = None,
    preset: Annotated[
        Preset | None,
        typer.Option(
            "--preset",
            help="Network shapes: local (default: the gaze refiner, a 7-px-field discriminator), gaze (the paper's eye-gaze nets, 23-px field), hand (the paper's hand-pose nets) or tiny (tests).",
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", help="Refiner feature maps (preset's value by default, 64)."),
    ] = None,
    blocks: Annotated[
        int | None,
        typer.Option("--blocks", help="Refiner ResNet blocks (local and gaze 4, hand 10)."),
    ] = None,
    kernel: Annotated[
        int | None,
        typer.Option("--kernel", help="Refiner kernel size, odd (local and gaze 3, hand 7)."),
    ] = None,
    refiner_output: Annotated[
        RefinerOutput | None,
        typer.Option(
            "--refiner-output",
            help="direct (default: the paper's tanh(f(x))) or residual (tanh(atanh(x) + f(x)), the identity at the start; measured worse on the stroke case, docs/training.md).",
        ),
    ] = None,
    lambda_reg: Annotated[
        float | None,
        typer.Option(
            "--lambda-reg",
            help="Weight of the self-regularisation loss mean|psi(R(x)) - psi(x)| (default 0.5); raise it if refined images drift from their labels, lower it if they look unchanged.",
        ),
    ] = None,
    psi: Annotated[
        Psi | None,
        typer.Option(
            "--psi",
            help="Feature map of the self-regularisation loss: identity (default), mean-channels, downsample.",
        ),
    ] = None,
    lambda_label: Annotated[
        float | None,
        typer.Option(
            "--lambda-label",
            help="Weight of the label loss CE(C(R(x)), y) of a frozen classifier trained on the synthetic class subfolders (default 5; on when class subfolders exist; 0 turns it off).",
        ),
    ] = None,
    lambda_label_pretrain: Annotated[
        float | None,
        typer.Option(
            "--lambda-label-pretrain",
            help="Weight of the label loss during refiner pretraining (default: --lambda-label's).",
        ),
    ] = None,
    label_target: Annotated[
        LabelTarget | None,
        typer.Option(
            "--label-target",
            help="What the label loss keeps: prediction (default, KL(C(x) || C(R(x))): C's own reading of x, so the identity costs nothing where C is unsure), class (CE(C(R(x)), y) with the folder class).",
        ),
    ] = None,
    label_warmup: Annotated[
        int | None,
        typer.Option(
            "--label-warmup",
            help="Refiner pretraining steps over which the label loss weight ramps up linearly from 0 (default: half the pretraining on RGB images, 0 on gray).",
        ),
    ] = None,
    class_conditional: Annotated[
        ClassConditional | None,
        typer.Option(
            "--class-conditional",
            help="Projection discriminator per class: auto (default: on when --real has the same class subfolders), on, off.",
        ),
    ] = None,
    content: Annotated[
        Content | None,
        typer.Option(
            "--content",
            help="Content loss: l1 (default, mean|psi(R(x))-psi(x)|), lowpass (L1 of blurred images: texture may change), nce (PatchNCE on the refiner's features, plus the L1), structure (local edge orientation kept, plus the L1).",
        ),
    ] = None,
    lambda_nce: Annotated[
        float | None,
        typer.Option("--lambda-nce", help="Weight of PatchNCE with --content nce (default 1)."),
    ] = None,
    lambda_structure: Annotated[
        float | None,
        typer.Option(
            "--lambda-structure",
            help="Weight of the orientation loss with --content structure (default 1).",
        ),
    ] = None,
    classifier_steps: Annotated[
        int | None,
        typer.Option(
            "--classifier-steps",
            help="Training steps of the label classifier, before pretraining (default 600).",
        ),
    ] = None,
    gan_loss: Annotated[
        GanLoss | None,
        typer.Option(
            "--gan-loss",
            help="Adversarial loss: bce (the paper's cross-entropy, default), lsgan (least squares), hinge.",
        ),
    ] = None,
    r1_gamma: Annotated[
        float | None,
        typer.Option(
            "--r1-gamma",
            help="Weight of the R1 gradient penalty on real images (default 10; 0 = off; see docs/training.md).",
        ),
    ] = None,
    r1_every: Annotated[
        int | None,
        typer.Option(
            "--r1-every", help="Apply R1 every k discriminator steps, weighted by k (default 4)."
        ),
    ] = None,
    ema_decay: Annotated[
        float | None,
        typer.Option(
            "--ema-decay",
            help="Moving average of the refiner's weights used for samples, scores, refine and export (default 0.999; 0 = raw weights).",
        ),
    ] = None,
    grad_clip: Annotated[
        float | None,
        typer.Option(
            "--grad-clip",
            help="Clip both networks' gradients to this global norm (default 0 = off).",
        ),
    ] = None,
    on_collapse: Annotated[
        OnCollapse | None,
        typer.Option(
            "--on-collapse",
            help="When the health monitor sees collapse signs: warn (default) or stop training there.",
        ),
    ] = None,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            "--val-fraction",
            help="Share of the real images (at least 16, at most half) held out to score checkpoints (default 0.1; 0 = none).",
        ),
    ] = None,
    kg: Annotated[
        int | None, typer.Option("--kg", help="Refiner updates per step (default 2).")
    ] = None,
    kd: Annotated[
        int | None, typer.Option("--kd", help="Discriminator updates per step (default 1).")
    ] = None,
    pretrain_refiner_steps: Annotated[
        int | None,
        typer.Option(
            "--pretrain-refiner-steps",
            help="Refiner steps on self-regularisation alone before the adversarial phase (default 1000).",
        ),
    ] = None,
    pretrain_disc_steps: Annotated[
        int | None,
        typer.Option(
            "--pretrain-disc-steps",
            help="Discriminator steps before the adversarial phase (default 200).",
        ),
    ] = None,
    buffer_size: Annotated[
        int | None,
        typer.Option(
            "--buffer-size",
            help="History buffer capacity in images, a multiple of batch/2 (default 32 x batch).",
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option("--optimizer", help="adam (default, beta1 0.5) or sgd (the paper's)."),
    ] = None,
    lr_refiner: Annotated[
        float | None,
        typer.Option(
            "--lr-refiner",
            help="Refiner learning rate (default 5e-5, a quarter of --lr-disc; see docs/training.md).",
        ),
    ] = None,
    lr_disc: Annotated[
        float | None, typer.Option("--lr-disc", help="Discriminator learning rate (default 2e-4).")
    ] = None,
    lr_pretrain_refiner: Annotated[
        float | None,
        typer.Option(
            "--lr-pretrain-refiner",
            help="Refiner learning rate during its pretraining (default: --lr-refiner's); "
            "--lr-refiner applies after it.",
        ),
    ] = None,
    size: Annotated[
        tuple[int, int] | None,
        typer.Option(
            "--size", help="Training size H W; required when synthetic images differ in size."
        ),
    ] = None,
    channels: Annotated[
        int | None,
        typer.Option(
            "--channels", help="1 (gray) or 3 (RGB); default: the synthetic images' channels."
        ),
    ] = None,
    real_crop: Annotated[
        bool | None,
        typer.Option(
            "--real-crop/--no-real-crop",
            help="Randomly crop real images of another size to the training size instead of resizing them.",
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Stop at the first undecodable image instead of skipping it.",
        ),
    ] = None,
    augment: Annotated[
        Augment | None,
        typer.Option(
            "--augment",
            help="Discriminator augmentation for few real images: auto (default: ada below 100 "
            "real images, else none), none, diffaugment, ada.",
        ),
    ] = None,
    augment_policy: Annotated[
        str | None,
        typer.Option(
            "--augment-policy",
            help="Comma list of transforms: color, translation, cutout, flip, rotate, noise (default color,translation,cutout).",
        ),
    ] = None,
    steps_per_call: Annotated[
        int | None,
        typer.Option(
            "--steps-per-call",
            help="Training steps per device call, unrolled (default 1; see docs/performance.md).",
        ),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            "--precision",
            help="float32 (default) or bf16 compute (parameters stay float32), for accelerators.",
        ),
    ] = None,
    checkpoint_every: Annotated[
        int | None,
        typer.Option("--checkpoint-every", help="Save a checkpoint every N steps (default 500)."),
    ] = None,
    keep: Annotated[
        int | None, typer.Option("--keep", help="Checkpoints to keep (default 3).")
    ] = None,
    sample_every: Annotated[
        int | None,
        typer.Option("--sample-every", help="Write a sample grid every N steps (default 250)."),
    ] = None,
    log_every: Annotated[
        int | None, typer.Option("--log-every", help="Write metrics every N steps (default 50).")
    ] = None,
) -> None:
    """Train a SimGAN refiner and patch discriminator (resumes an existing --out)."""
    # Every parameter but --config is the TrainConfig field of its name (checked by
    # tests/test_settings_source.py), so the flags are this call's arguments.
    flags = {name: value for name, value in locals().items() if name != "config_file"}
    from ..config import load_config_file

    values = load_config_file(config_file) if config_file else {}
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

    config = settings_for_run(values, source=str(config_file) if config_file else "flags")

    from ..runtime import setup
    from ..train import train as run_training

    setup(distributed=True, kind="train")
    view = ProgressView()
    try:
        result = run_training(config, on_event=view)
    finally:
        view.close()
    report_best(Path(config.out))
    log(
        f"done: step {result.step}; checkpoints in {Path(config.out) / 'checkpoints'}, samples in {Path(config.out) / 'samples'}"
    )
