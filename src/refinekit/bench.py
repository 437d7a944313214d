"""Benchmark the package's own training step and refine function (not copies of them).

Throughput follows a PyTorch reference bench (torch_simgan.py, docs/performance.md) so the two can be compared back to back:
synthetic images pushed through the refiner per second = (Kg + Kd) x batch / step time.
FLOPs are counted analytically per convolution (models.refiner_flops / disc_flops); a refiner
kind without the ResNet (the camera model) counts as 0, so its GFLOP are the discriminator's.
The training step is the one `config.refiner` trains with (`--refiner`, its kind's defaults from
presets.REFINER_DEFAULTS); a training-free kind has none and is refused.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .config import TrainConfig
from .errors import UsageError
from .nn.models import disc_flops, refiner_flops

# Refiner kinds whose refiner has the ResNet (its convolutions are what bench counts and breaks
# down); the others are pixel-wise or camera models with no convolution layers.
WITH_RESNET = ("resnet", "acquisition+resnet")


def refiner_conv_flops(config: TrainConfig, channels: int, size: tuple[int, int]) -> float:
    """models.refiner_flops for a kind with the ResNet, else 0 (no convolution layers)."""
    return refiner_flops(config, channels, size) if config.refiner in WITH_RESNET else 0.0


def bench_config(refiner: str = "resnet", **settings: Any) -> TrainConfig:
    """A TrainConfig of `settings` for refiner kind `refiner`, with the settings its kind
    changes (presets.REFINER_DEFAULTS) where `settings` does not give them, as train does."""
    from .presets import REFINER_DEFAULTS

    return TrainConfig(**{**REFINER_DEFAULTS[refiner], **settings, "refiner": refiner})


def train_step_flops(config: TrainConfig, channels: int, size: tuple[int, int]) -> float:
    """FLOPs of one adversarial step (convolutions only).

    Refiner update, per image: R forward + backward (2x forward: input and weight gradients)
    + D forward + D input-gradient backward (1x) = 3R + 2D.
    Discriminator update, per image: R forward on one synthetic image, then D forward and full
    backward (3x) on one real and one refined image = R + 6D.
    """
    r = refiner_conv_flops(config, channels, size)
    d = disc_flops(config, channels, size)
    b = config.batch_size
    return config.kg * b * (3 * r + 2 * d) + config.kd * b * (r + 6 * d)


@dataclass
class BenchResult:
    mode: str
    backend: str
    devices: int
    preset: str
    size: tuple[int, int]
    channels: int
    batch: int
    images_per_second: float
    ms_per_step: float
    gflop_per_step: float
    gflops_per_second: float
    compile_seconds: float
    repeats: int
    steps_per_call: int
    precision: str
    spread_ms: tuple[float, float]  # min and max over repeats
    micro_batch: int = 0  # images per micro-batch of forward-only refiner passes (0: whole batches)
    refiner: str = "resnet"  # the refiner kind (--refiner)
    winograd: bool = False  # refine: Winograd route on (winograd.py decides per convolution); GFLOP counted as direct

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _image_shape(config: TrainConfig) -> tuple[tuple[int, int], int]:
    """The (H, W) and channel count a bench config must name (the CLI always fills both)."""
    if config.size is None or config.channels is None:
        raise ValueError("bench needs a config with size and channels set")
    height, width = config.size
    return (int(height), int(width)), int(config.channels)


def _random_data(n: int, size: tuple[int, int], channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *size, channels), dtype=np.uint8)


def _check_repeats(repeats: int) -> None:
    """A median needs at least one timed call."""
    if repeats < 1:
        raise UsageError(f"--repeats {repeats}: expected an integer >= 1")


def bench_train(config: TrainConfig, repeats: int = 10, warmup: int = 2) -> BenchResult:
    """Time `repeats` calls of the real jitted adversarial step (each `steps_per_call` steps)
    of the refiner kind `config.refiner`."""
    _check_repeats(repeats)
    from .refiners import TRAINING_FREE

    if config.refiner in TRAINING_FREE:
        raise UsageError(
            f"--refiner {config.refiner}: a training-free kind has no training step (its "
            "parameters are computed from the real images); --mode refine times it"
        )
    import jax

    from .nn import microbatch
    from .training.state import DeviceData, make_mesh
    from .training.steps import StepFunctions

    size, channels = _image_shape(config)
    fns = StepFunctions(config, (*size, channels), make_mesh())
    state = fns.init_state()
    synthetic, real = (
        jax.device_put(_random_data(4 * config.batch_size, size, channels, seed), fns.replicated)
        for seed in (0, 1)
    )
    data = DeviceData(synthetic, real)
    step = fns.multi_step("adversarial", config.steps_per_call)
    start = time.perf_counter()
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    first = time.perf_counter() - start
    for _ in range(warmup):
        state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        state, metrics = step(state, data)
        jax.block_until_ready(metrics)
        times.append((time.perf_counter() - start) / config.steps_per_call)
    per_step = statistics.median(times)
    flops = train_step_flops(config, channels, size)
    return BenchResult(
        mode="train",
        backend=jax.default_backend(),
        devices=jax.device_count(),
        preset=config.preset,
        size=size,
        channels=channels,
        batch=config.batch_size,
        images_per_second=(config.kg + config.kd) * config.batch_size / per_step,
        ms_per_step=per_step * 1e3,
        gflop_per_step=flops / 1e9,
        gflops_per_second=flops / per_step / 1e9,
        compile_seconds=max(0.0, first - per_step * config.steps_per_call),
        repeats=repeats,
        steps_per_call=config.steps_per_call,
        precision=config.precision,
        spread_ms=(min(times) * 1e3, max(times) * 1e3),
        micro_batch=microbatch.effective(fns.forward_micro_batch, config.batch_size),
        refiner=config.refiner,
    )


def bench_refine(
    config: TrainConfig,
    batch: int = 256,
    repeats: int = 10,
    warmup: int = 2,
    micro_batch: int | None = None,
    winograd: bool | None = None,
) -> BenchResult:
    """Time the real `inference.Refiner` call (host -> device -> host) on `batch` images."""
    _check_repeats(repeats)
    import jax
    from flax import nnx

    from .inference.refiner import Refiner
    from .nn import microbatch
    from .nn.models import build_models

    size, channels = _image_shape(config)
    refiner, _ = build_models(config, channels, config.seed)
    _, params = nnx.split(refiner, nnx.Param)
    model = Refiner(
        config,
        params,
        {"bench": "random weights"},
        batch_size=batch,
        micro_batch=micro_batch,
        winograd=winograd,
    )
    images = _random_data(batch, size, channels, 2).astype(np.float32) / 255.0
    start = time.perf_counter()
    model(images)
    first = time.perf_counter() - start
    for _ in range(warmup):
        model(images)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(images)
        times.append(time.perf_counter() - start)
    per_call = statistics.median(times)
    flops = refiner_conv_flops(config, channels, size) * batch
    return BenchResult(
        mode="refine",
        backend=jax.default_backend(),
        devices=jax.device_count(),
        preset=config.preset,
        size=size,
        channels=channels,
        batch=batch,
        images_per_second=batch / per_call,
        ms_per_step=per_call * 1e3,
        gflop_per_step=flops / 1e9,
        gflops_per_second=flops / per_call / 1e9,
        compile_seconds=max(0.0, first - per_call),
        repeats=repeats,
        steps_per_call=1,
        precision=config.precision,
        spread_ms=(min(times) * 1e3, max(times) * 1e3),
        micro_batch=microbatch.effective(model.micro_batch_for(*size), model.batch_size),
        winograd=model.winograd,
        refiner=config.refiner,
    )


@dataclass
class OpTiming:
    name: str  # e.g. "refiner 3x3 64->64"
    kind: str  # forward, input-grad, weight-grad
    count: int  # how many such convolutions one training step runs (at this batch)
    ms: float  # one call
    gflops_per_second: float
    share: float = 0.0  # of the summed convolution time of one step


def _conv_layers(
    config: TrainConfig, channels: int, size: tuple[int, int]
) -> list[tuple[str, int, int, int, int, int, int]]:
    """(name, H, W, in, out, kernel, stride) of every convolution, refiner then discriminator."""
    h, w = size
    k, width = config.refiner_kernel, config.refiner_width
    layers = [("refiner in", h, w, channels, width, k, 1)]
    layers += [("refiner block", h, w, width, width, k, 1)] * (2 * config.refiner_blocks)
    layers.append(("refiner out", h, w, width, channels, 1, 1))
    features = channels
    for index, layer in enumerate(config.discriminator_layers):
        if layer[0] == "conv":
            layers.append((f"disc conv{index}", h, w, features, layer[3], layer[1], layer[2]))
            features = layer[3]
        h, w = -(-h // layer[2]), -(-w // layer[2])
    return layers


def bench_breakdown(config: TrainConfig, repeats: int = 5) -> list[OpTiming]:
    """Time each distinct convolution of a training step alone: forward, input and weight gradient.

    Counts per step follow train_step_flops: refiner convs run forward Kg*b + Kd*b images, input
    and weight gradients Kg*b; discriminator convs forward Kg*b + 2*Kd*b, input gradients
    Kg*b + 2*Kd*b (but not the first layer), weight gradients 2*Kd*b.
    """
    _check_repeats(repeats)
    if config.refiner not in WITH_RESNET:
        raise UsageError(
            f"--refiner {config.refiner}: breakdown times the ResNet's convolutions, and this "
            f"kind has none (kinds with them: {', '.join(WITH_RESNET)})"
        )
    import jax
    import jax.numpy as jnp

    (size, channels), b = _image_shape(config), config.batch_size
    out: list[OpTiming] = []
    seen: dict[tuple, int] = {}
    for name, h, w, cin, cout, k, s in _conv_layers(config, channels, size):
        key = (name, h, w, cin, cout, k, s)
        seen[key] = seen.get(key, 0) + 1
    for (name, h, w, cin, cout, k, s), repeat in seen.items():
        x = jnp.ones((b, h, w, cin), jnp.float32)
        kernel = jnp.ones((k, k, cin, cout), jnp.float32) * 0.01

        def conv(x, kernel, s=s):
            return jax.lax.conv_general_dilated(
                x, kernel, (s, s), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
            )

        y = conv(x, kernel)
        flops = 2.0 * b * y.shape[1] * y.shape[2] * k * k * cin * cout
        _, vjp = jax.vjp(conv, x, kernel)
        fns = {
            "forward": jax.jit(conv),
            "input-grad": jax.jit(lambda x, kernel, y=y: jax.vjp(conv, x, kernel)[1](y)[0]),
            "weight-grad": jax.jit(lambda x, kernel, y=y: jax.vjp(conv, x, kernel)[1](y)[1]),
        }
        is_refiner = name.startswith("refiner")
        per_kind = {
            "forward": (config.kg + config.kd) if is_refiner else (config.kg + 2 * config.kd),
            "input-grad": config.kg
            if is_refiner
            else (0 if name == "disc conv0" else config.kg + 2 * config.kd),
            "weight-grad": config.kg if is_refiner else 2 * config.kd,
        }
        for kind, fn in fns.items():
            if per_kind[kind] == 0:
                continue
            jax.block_until_ready(fn(x, kernel))
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                jax.block_until_ready(fn(x, kernel))
                times.append(time.perf_counter() - start)
            t = statistics.median(times)
            label = f"{name} {k}x{k}/{s} {cin}->{cout} @{h}x{w}"
            out.append(OpTiming(label, kind, repeat * per_kind[kind], t * 1e3, flops / t / 1e9))
    total = sum(o.ms * o.count for o in out)
    for o in out:
        o.share = o.ms * o.count / total
    return out
