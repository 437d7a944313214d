"""`refinekit bench`: time the package's own training step and refine function."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer

from .common import log, stdout_write
from .train_options import RefinerKind


class Preset(StrEnum):
    local = "local"
    gaze = "gaze"
    hand = "hand"
    tiny = "tiny"


class Precision(StrEnum):
    float32 = "float32"
    bf16 = "bf16"


class Mode(StrEnum):
    train = "train"
    refine = "refine"
    both = "both"
    breakdown = "breakdown"


def bench(
    mode: Annotated[
        Mode,
        typer.Option(
            "--mode",
            help="What to time: a training step, the refine function, both, or breakdown "
            "(each convolution of a training step alone: forward, input and weight "
            "gradients, with its share of the step).",
        ),
    ] = Mode.both,
    refiner: Annotated[
        RefinerKind,
        typer.Option(
            "--refiner",
            metavar="NAME",
            help="Refiner kind, as train's --refiner, with its kind's settings; a "
            "training-free kind has no training step (refine mode only).",
        ),
    ] = RefinerKind("resnet"),
    preset: Annotated[
        Preset,
        typer.Option("--preset", help="Network shapes, as train's --preset."),
    ] = Preset.local,
    size: Annotated[
        tuple[int, int],
        typer.Option("--size", metavar="H W", help="Image size (the paper's eye images)."),
    ] = (35, 55),
    channels: Annotated[int, typer.Option("--channels", help="Image channels, 1 or 3.")] = 1,
    batch_size: Annotated[
        int,
        typer.Option("--batch-size", min=1, help="Training batch (as the PyTorch reference)."),
    ] = 64,
    refine_batch: Annotated[
        int, typer.Option("--refine-batch", min=1, help="Images per refine call.")
    ] = 256,
    kg: Annotated[int, typer.Option("--kg", help="Refiner updates per step.")] = 2,
    kd: Annotated[int, typer.Option("--kd", help="Discriminator updates per step.")] = 1,
    steps_per_call: Annotated[
        int, typer.Option("--steps-per-call", help="Training steps per device call (unrolled).")
    ] = 1,
    precision: Annotated[
        Precision,
        typer.Option("--precision", help="Compute precision; parameters stay float32."),
    ] = Precision.float32,
    micro_batch: Annotated[
        int | None,
        typer.Option(
            "--micro-batch",
            min=0,
            help="refine: images per forward pass (0: whole batches).",
            show_default="8,000 pixels' worth on one CPU device, else 0",
        ),
    ] = None,
    winograd: Annotated[
        bool | None,
        typer.Option(
            "--winograd/--no-winograd",
            help="refine: 3x3 convolutions by Winograd's F(2x2,3x3).",
            show_default="on for CPU",
        ),
    ] = None,
    repeats: Annotated[
        int, typer.Option("--repeats", min=1, help="Timed calls; the median is reported.")
    ] = 10,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object per mode on stdout instead of a table."),
    ] = False,
) -> None:
    """Benchmark training and refinement on the current JAX backend (images/s, GFLOP/s, compile time)."""
    from ..bench import bench_breakdown, bench_config, bench_refine, bench_train
    from ..runtime import setup, user_environment

    setup(kind="refine" if mode == Mode.refine else "train")
    config = bench_config(
        refiner.value,
        preset=preset.value,
        size=size,
        channels=channels,
        batch_size=batch_size,
        kg=kg,
        kd=kd,
        steps_per_call=steps_per_call,
        precision=precision.value,
    )
    if mode == Mode.breakdown:
        ops = bench_breakdown(config, repeats=repeats)
        for op in sorted(ops, key=lambda o: -o.share):
            if as_json:
                stdout_write(json.dumps(op.__dict__) + "\n")
            else:
                log(
                    f"{op.share * 100:5.1f}%  {op.name:40s} {op.kind:11s} x{op.count:<3d} {op.ms:8.2f} ms  {op.gflops_per_second:6.0f} GFLOP/s"
                )
        return
    results = []
    if mode in (Mode.train, Mode.both):
        results.append(bench_train(config, repeats=repeats))
    if mode == Mode.refine:
        results.append(
            bench_refine(
                config,
                batch=refine_batch,
                repeats=repeats,
                micro_batch=micro_batch,
                winograd=winograd,
            )
        )
    for r in results:
        _show(r, as_json)
    if mode == Mode.both:
        # XLA flags are per process and refine has its own defaults: time it in a fresh one.
        import subprocess
        import sys

        args = [
            sys.executable,
            "-m",
            "refinekit",
            "bench",
            "--mode",
            "refine",
            "--refiner",
            refiner.value,
            "--preset",
            preset.value,
            "--size",
            str(size[0]),
            str(size[1]),
            "--channels",
            str(channels),
            "--refine-batch",
            str(refine_batch),
            "--precision",
            precision.value,
            "--repeats",
            str(repeats),
        ] + (["--json"] if as_json else [])
        if micro_batch is not None:
            args += ["--micro-batch", str(micro_batch)]
        if winograd is not None:
            args.append("--winograd" if winograd else "--no-winograd")
        subprocess.run(args, check=True, env=user_environment())


def _show(r, as_json: bool) -> None:
    if as_json:
        stdout_write(json.dumps(r.to_dict()) + "\n")
    else:
        log(
            f"{r.mode:6s} {r.refiner} {r.preset} {r.size[0]}x{r.size[1]}x{r.channels} batch {r.batch} on {r.devices} {r.backend} "
            f"device(s), {r.precision}, forward micro-batch {r.micro_batch or 'off'}{', Winograd 3x3' if r.winograd else ''}: {r.images_per_second:.1f} images/s, {r.ms_per_step:.1f} ms/step "
            f"(min {r.spread_ms[0]:.1f}, max {r.spread_ms[1]:.1f}), {r.gflop_per_step:.1f} GFLOP/step counted -> "
            f"{r.gflops_per_second:.0f} GFLOP/s, compile {r.compile_seconds:.1f} s"
        )
