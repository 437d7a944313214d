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
)
_FLOATS = ("lambda_reg", "lr_refiner", "lr_disc", "ada_target", "ada_speed")
# Settings that may be None (follow another setting); when given: finite, and in range.
_OPTIONAL_FLOATS = {
    "lr_pretrain_refiner": (0.0, False, "a learning rate > 0"),
    "lambda_label_pretrain": (0.0, True, "a number >= 0"),
}
_OPTIONAL_COUNTS = ("label_warmup",)
MAX_SIDE = 16384  # pixels per side of the training size


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
                raise ConfigError(f"--size: {side} pixels per side, more than {MAX_SIDE}")


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
        raise ConfigError(f"--{name.replace('_', '-')}: expected {expected}")


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
