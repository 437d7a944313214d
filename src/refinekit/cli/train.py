"""`refinekit train`: parse flags, build a TrainConfig, call refinekit.train.train, show progress."""

from __future__ import annotations

import time
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer

from .common import interactive, log, progress_bar


class Preset(StrEnum):
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


class ClassConditional(StrEnum):
    auto = "auto"
    on = "on"
    off = "off"


class Augment(StrEnum):
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
    preset: Annotated[
        Preset | None,
        typer.Option(
            "--preset",
            help="Network shapes: gaze (paper's eye-gaze nets, default), hand (paper's hand-pose nets) or tiny (tests).",
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option("--width", help="Refiner feature maps (preset's value by default, 64)."),
    ] = None,
    blocks: Annotated[
        int | None, typer.Option("--blocks", help="Refiner ResNet blocks (gaze 4, hand 10).")
    ] = None,
    kernel: Annotated[
        int | None, typer.Option("--kernel", help="Refiner kernel size, odd (gaze 3, hand 7).")
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
            help="Weight of the label loss CE(C(R(x)), y) of a frozen classifier trained on the synthetic class subfolders (default 1; on when class subfolders exist; 0 turns it off).",
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
            help="Content loss: l1 (default, mean|psi(R(x))-psi(x)|), lowpass (L1 of blurred images: texture may change), nce (PatchNCE on the refiner's features, plus the L1).",
        ),
    ] = None,
    lambda_nce: Annotated[
        float | None,
        typer.Option("--lambda-nce", help="Weight of PatchNCE with --content nce (default 1)."),
    ] = None,
    classifier_steps: Annotated[
        int | None,
        typer.Option(
            "--classifier-steps",
            help="Training steps of the label classifier, before pretraining (default 600).",
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
        float | None, typer.Option("--lr-refiner", help="Refiner learning rate (default 2e-4).")
    ] = None,
    lr_disc: Annotated[
        float | None, typer.Option("--lr-disc", help="Discriminator learning rate (default 2e-4).")
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
            help="Discriminator augmentation for few real images: none (default), diffaugment, ada.",
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
            help="Training steps per device call, unrolled (default 1; see README's performance section).",
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
    from ..config import TrainConfig, load_config_file
    from ..errors import UsageError

    values = load_config_file(config_file) if config_file else {}
    flags = {
        "synthetic": synthetic,
        "real": real,
        "out": out,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "preset": preset,
        "width": width,
        "blocks": blocks,
        "kernel": kernel,
        "lambda_reg": lambda_reg,
        "psi": psi,
        "lambda_label": lambda_label,
        "class_conditional": class_conditional,
        "content": content,
        "lambda_nce": lambda_nce,
        "classifier_steps": classifier_steps,
        "kg": kg,
        "kd": kd,
        "pretrain_refiner_steps": pretrain_refiner_steps,
        "pretrain_disc_steps": pretrain_disc_steps,
        "buffer_size": buffer_size,
        "optimizer": optimizer,
        "lr_refiner": lr_refiner,
        "lr_disc": lr_disc,
        "size": size,
        "channels": channels,
        "real_crop": real_crop,
        "strict": strict,
        "augment": augment,
        "augment_policy": augment_policy,
        "steps_per_call": steps_per_call,
        "precision": precision,
        "checkpoint_every": checkpoint_every,
        "keep": keep,
        "sample_every": sample_every,
        "log_every": log_every,
    }
    for name, value in flags.items():
        if value is not None:
            values[name] = (
                value.value
                if isinstance(value, Enum)
                else str(value)
                if isinstance(value, Path)
                else value
            )
    for required in ("synthetic", "real", "out"):
        if not values.get(required):
            raise UsageError(f"--{required}: required (a folder path)")
    values = _resume_defaults(values)
    config = TrainConfig.from_dict(values, source=str(config_file) if config_file else "flags")

    from ..runtime import setup
    from ..train import train as run_training

    setup(distributed=True, kind="train")
    view = ProgressView()
    try:
        result = run_training(config, on_event=view)
    finally:
        view.close()
    log(
        f"done: step {result.step}; checkpoints in {Path(config.out) / 'checkpoints'}, samples in {Path(config.out) / 'samples'}"
    )


def _resume_defaults(values: dict) -> dict:
    """On an existing run, unspecified settings come from its config.json, not the defaults."""
    import json

    saved_path = Path(values["out"]) / "config.json"
    if not saved_path.exists():
        return values
    try:
        saved = json.loads(saved_path.read_text())
    except (OSError, json.JSONDecodeError):
        return values  # train() reports the damaged file
    saved.pop("extra", None)
    for key in ("synthetic", "real", "out"):
        saved.pop(key, None)
    return {**saved, **values}


class ProgressView:
    """Renders training events: a rich progress bar on a terminal, plain lines otherwise."""

    def __init__(self) -> None:
        self.progress = None
        self.task = None
        self.started = time.perf_counter()

    def __call__(self, event: dict) -> None:
        kind = event["kind"]
        if kind == "start":
            self._start(event)
        elif kind == "phase":
            log(f"phase {event['phase']}: steps {event['step']}..{event['end']}")
        elif kind == "log":
            self._log(event)
        elif kind == "checkpoint":
            if not self.progress:
                log(f"checkpoint saved at step {event['step']}")
        elif kind == "classifier_progress":
            if not self.progress:
                log(f"classifier step {event['step']}/{event['total']}: loss {event['loss']:.4f}")
        elif kind == "classifier":
            log(
                f"label classifier trained ({event['steps']} steps, {event['classes']} classes): "
                f"{event['accuracy']:.1%} of the synthetic images in their class; frozen"
            )
        elif kind == "warning":
            log(f"[yellow]warning:[/] {event['message']}")

    def _start(self, event: dict) -> None:
        g = event["geometry"]
        h, w = event["size"]
        d = event["data"]
        resumed = (
            f", resuming from step {event['resumed_from']}"
            if event["resumed_from"] is not None
            else ""
        )
        log(
            f"training {event['run']}: {d['synthetic']['images']} synthetic, {d['real']['images']} real images at "
            f"{h}x{w}x{event['channels']} ({d['bit_depth']}-bit){resumed}"
        )
        log(
            f"discriminator: {g['grid'][0]}x{g['grid'][1]} patch grid, each patch sees {g['receptive_field']}x"
            f"{g['receptive_field']} pixels (stride {g['stride']}); history buffer {event['history_size']} images; "
            f"devices: {', '.join(event['devices'])}"
        )
        for reason in event.get("labels", []):
            log(reason)
        if event["skipped"]:
            first = "; ".join(event["skipped"][:3])
            log(f"[yellow]skipped {len(event['skipped'])} undecodable file(s)[/]: {first}")
        small = d["real"]["images"]
        if event.get("augment", "none") == "none" and small < 100:
            log(
                f"[yellow]note:[/] only {small} real images: the discriminator will memorise them; consider --augment ada "
                "(with 50 real images it lowered KID about 5x in the README's measurement)"
            )
        elif event.get("augment", "none") == "none" and small < 500:
            log(
                f"[yellow]note:[/] only {small} real images: if disc_acc_real stays near 1 in metrics.jsonl, the "
                "discriminator is memorising them; try --augment ada"
            )
        if interactive():
            self.progress = progress_bar("[bold]{task.fields[phase]}", "rate", "info")
            self.task = self.progress.add_task(
                "train",
                total=event["total_steps"],
                completed=event["start_step"],
                phase="start",
                rate="",
                info="",
            )
            self.progress.start()

    def _log(self, event: dict) -> None:
        phase = event["phase"]
        if phase == "pretrain_refiner":
            info = f"reg {event['self_regularisation']:.4f}"
        elif phase == "pretrain_disc":
            info = f"D real {event['disc_real']:.3f} refined {event['disc_refined']:.3f}"
        else:
            info = (
                f"R adv {event['refiner_adversarial']:.3f} reg {event['self_regularisation']:.4f} "
                f"D real {event['disc_real']:.3f} ref {event['disc_refined']:.3f} hist {event['disc_history']:.3f} "
                f"|R(x)-x| {event['mean_abs_change']:.4f}"
            )
        if "label_accuracy" in event:
            info += f" label {event['label_accuracy']:.3f}"
            if "augment_p" in event and event.get("augment_p", 0) > 0:
                info += f" p {event['augment_p']:.3f} rt {event['ada_signal']:.2f}"
        rate = f"{event['images_per_second']:.0f} img/s"
        if self.progress is not None:
            self.progress.update(
                self.task, completed=event["step"], phase=phase, rate=rate, info=info
            )
        else:
            log(f"step {event['step']} {phase}: {info} {rate}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
