"""The ranges every training setting must fall in, checked when a TrainConfig is created,
so that nothing is written for settings that cannot be trained. No JAX here.
"""

from __future__ import annotations

import math
from typing import Any

from .errors import ConfigError

# Upper limits, checked before anything is written: a value past them cannot be trained
# (it overflows a 32-bit counter or seed, or asks for more memory than any machine has) and
# would otherwise fail late, deep inside JAX, after the run folder was started.
INT32_MAX = 2**31 - 1
LIMITS: dict[str, tuple[int, int]] = {
    "seed": (0, 2**32 - 1),
    "batch_size": (1, 1 << 16),
    "buffer_size": (1, 1 << 22),
    "width": (1, 4096),
    "blocks": (1, 256),
    "kernel": (1, 63),
    "steps_per_call": (1, 4096),
}
_COUNTS = (
    "steps",
    "pretrain_refiner_steps",
    "pretrain_disc_steps",
    "kg",
    "kd",
    "checkpoint_every",
    "keep",
    "sample_every",
    "log_every",
    "ada_interval",
    "freeze_refiner_steps",
    "freeze_disc_layers",
)
_FLOATS = ("lambda_reg", "lr_refiner", "lr_disc", "ada_target", "ada_speed")
# Settings that may be None (follow another setting); when given: finite, and in range.
_OPTIONAL_FLOATS = {
    "lr_pretrain_refiner": (0.0, False, "a learning rate > 0"),
    "lambda_label_pretrain": (0.0, True, "a number >= 0"),
}
_OPTIONAL_COUNTS = ("label_warmup",)
MAX_SIDE = 16384  # pixels per side of the training size

# Resource limits, shared by train (checked before any work), export and refine (checked on an
# export's header before anything is allocated); docs/reliability.md. Settings in range one by
# one can still be absurd together (width 4096 with 256 blocks; --size 16384 16384 with a batch
# of 32): they are refused by these estimates, never started to exhaust memory.
MAX_PARAMETERS = 1 << 26  # refiner parameters (the paper's hand preset has ~0.8 M)
MAX_TRAINING_BYTES = 1 << 38  # 256 GiB: the estimated memory of one training step, all devices
_FLOAT = 4  # bytes per float32


def refiner_parameters(channels: int, width: int, blocks: int, kernel: int) -> int:
    """The ResNet refiner's parameter count, in closed form (nothing is allocated): an input
    conv, `blocks` residual blocks of two convs, and a 1x1 output conv."""
    count = (kernel * kernel * channels + 1) * width
    count += blocks * 2 * (kernel * kernel * width + 1) * width
    return count + (width + 1) * channels


def _has_resnet(config: Any) -> bool:
    return "resnet" in str(getattr(config, "refiner", "resnet"))


def check_parameters(config: Any, channels: int | None = None) -> None:
    """Refuse a refiner over MAX_PARAMETERS (ConfigError naming the flags), before anything is
    allocated; `channels` defaults to the config's, or 3 (the larger) when it has none yet."""
    if not _has_resnet(config):
        return  # a camera model alone has a few dozen parameters
    width, blocks, kernel = config.refiner_width, config.refiner_blocks, config.refiner_kernel
    count = refiner_parameters(channels or config.channels or 3, width, blocks, kernel)
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"--width {width}, --blocks {blocks}, --kernel {kernel}: a refiner of {count} "
            f"parameters, more than the limit of {MAX_PARAMETERS} that train, export and refine "
            "share; choose a smaller --width or fewer --blocks"
        )


def training_memory(config: Any, size: tuple[int, int], channels: int) -> dict[str, int]:
    """A lower-bound estimate, in bytes, of what one training step holds (no JAX): each part's
    largest term only. Parameters with their gradients, Adam moments and EMA; the refiner's
    and the discriminator's activations for a batch (kept for the backward pass, and their
    gradients); the history buffer of refined images (float32)."""
    h, w = int(size[0]), int(size[1])
    batch = int(config.batch_size)
    width, blocks, kernel = config.refiner_width, config.refiner_blocks, config.refiner_kernel
    parts = {"parameters": 0, "refiner activations": 0, "discriminator activations": 0}
    if _has_resnet(config):
        parts["parameters"] += 5 * _FLOAT * refiner_parameters(channels, width, blocks, kernel)
        parts["refiner activations"] = 2 * _FLOAT * batch * h * w * width * (2 * blocks + 2)
    features_in, side_h, side_w, activations = channels, h, w, 0
    for layer in config.discriminator_layers:
        stride = layer[2]
        side_h, side_w = -(-side_h // stride), -(-side_w // stride)
        if layer[0] == "conv":
            kernel_d, features = layer[1], layer[3]
            parts["parameters"] += 4 * _FLOAT * (kernel_d * kernel_d * features_in + 1) * features
            features_in = features
        activations += side_h * side_w * features_in
    parts["discriminator activations"] = 2 * _FLOAT * 2 * batch * activations  # real, refined
    parts["history buffer"] = _FLOAT * int(config.history_size) * h * w * channels
    return parts


def _gib(count: int) -> str:
    gib = count / (1 << 30)
    return f"{gib:,.0f} GiB" if gib >= 10 else f"{gib:.2g} GiB"


def check_resources(config: Any, size: tuple[int, int], channels: int | None = None) -> None:
    """Refuse, before any work, settings whose training would exceed MAX_PARAMETERS or
    MAX_TRAINING_BYTES at training size `size` (ConfigError naming the flags)."""
    channels = channels or config.channels or 3
    check_parameters(config, channels)
    parts = training_memory(config, size, channels)
    total = sum(parts.values())
    if total > MAX_TRAINING_BYTES:
        biggest = ", ".join(f"{name} {_gib(n)}" for name, n in parts.items() if n >= 1 << 30)
        given = config.size is not None and tuple(config.size) == tuple(size)
        h, w = size
        where = f"--size {h} {w}" if given else f"{h}x{w} images (no --size: their own size)"
        raise ConfigError(
            f"{where}, --batch-size {config.batch_size}, --width "
            f"{config.refiner_width}, --blocks {config.refiner_blocks}, --buffer-size "
            f"{config.history_size}: training would need about {_gib(total)} ({biggest}), more "
            f"than the limit of {_gib(MAX_TRAINING_BYTES)}; choose a smaller --size, "
            "--batch-size or --width"
        )


def check_limits(config: Any) -> None:
    """Types and ranges first, so the checks below (and JAX) only ever see sane numbers."""
    for name, (low, high) in LIMITS.items():
        value = getattr(config, name)
        if value is not None:
            _check_int(name, value, low, high)
    for name in _COUNTS:
        _check_int(name, getattr(config, name), 0, INT32_MAX)
    for name in _OPTIONAL_COUNTS:
        if getattr(config, name) is not None:
            _check_int(name, getattr(config, name), 0, INT32_MAX)
    if config.total_steps > INT32_MAX:
        raise ConfigError(
            f"--steps: the three phases add up to {config.total_steps} steps, more than "
            f"{INT32_MAX} (the step counter is a 32-bit integer)"
        )
    for name in (*_FLOATS, *_OPTIONAL_FLOATS):
        value = getattr(config, name)
        if value is None and name in _OPTIONAL_FLOATS:
            continue
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        check(name, ok and math.isfinite(value), "a finite number")
        if name in _OPTIONAL_FLOATS:
            floor, inclusive, expected = _OPTIONAL_FLOATS[name]
            check(name, value >= floor if inclusive else value > floor, expected)
    if config.size is not None and isinstance(config.size, list | tuple):
        for side in config.size:
            if isinstance(side, int) and not isinstance(side, bool) and side > MAX_SIDE:
                raise ConfigError(
                    f"--size: {side} pixels per side, more than {MAX_SIDE}", setting="size"
                )
    from .presets import PRESETS  # (loaded: a TrainConfig is being made)

    if isinstance(config.preset, str) and config.preset in PRESETS:  # else refused by name later
        check_parameters(config)


def check_frozen_layers(config: Any) -> None:
    """--freeze-disc-layers leaves at least the discriminator's last convolution to learn."""
    convs = sum(layer[0] == "conv" for layer in config.discriminator_layers)
    expected = f"fewer than the discriminator's {convs} convolutions (the last one must learn)"
    check("freeze_disc_layers", config.freeze_disc_layers < convs, expected)


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
    check(name, ok, f"an integer in {low}..{high}")


def check_layers(parsed: list[tuple]) -> None:
    """Discriminator layer specs ("conv", k, s, f) / ("pool", k, s) within sane ranges."""
    for layer in parsed:
        sane = (
            1 <= layer[1] <= 63
            and 1 <= layer[2] <= 64
            and (len(layer) == 3 or 1 <= layer[3] <= 4096)
        )
        if not sane or len(parsed) > 64:
            raise ConfigError(
                f"disc_layers: {list(layer)} is out of range (kernel 1..63, stride 1..64, "
                "features 1..4096, at most 64 layers)"
            )


def check(name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"--{name.replace('_', '-')}: expected {expected}", setting=name)


def parse_layers(layers: Any) -> tuple[tuple, ...]:
    """A disc_layers spec (lists from JSON/TOML) -> checked tuples; ConfigError otherwise."""
    parsed: list[tuple] = []
    try:
        for layer in layers:
            kind = layer[0]
            if kind == "conv" and len(layer) == 4:
                parsed.append(("conv", int(layer[1]), int(layer[2]), int(layer[3])))
            elif kind == "pool" and len(layer) == 3:
                parsed.append(("pool", int(layer[1]), int(layer[2])))
            else:
                raise ValueError(layer)
    except (TypeError, ValueError, IndexError) as exc:
        raise ConfigError(
            f"disc_layers: expected entries ['conv', kernel, stride, features] or ['pool', kernel, stride], got {layers!r}"
        ) from exc
    check_layers(parsed)
    if not parsed or parsed[-1][0] != "conv" or parsed[-1][3] != 2:
        raise ConfigError(
            "disc_layers: the last layer must be a conv with 2 features (real/refined logits)"
        )
    return tuple(parsed)
