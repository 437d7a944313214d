"""Refiner kinds: one module each, built here from the config's `refiner` setting.

A refiner is an `nnx.Module` mapping NHWC images in [-1, 1] to refined images of the same
shape; `anchored(x)` also returns what self-regularisation compares the output with (the input
for a single kind, the camera model's output for `acquisition+resnet`). A new kind is one
module in this folder, one branch in `build_refiner`, and its name in presets.REFINERS; a
training-free kind also has a row in `_FITTED`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..config import TrainConfig
from . import acquisition, colour, fda, histogram
from .acquisition import Acquisition
from .colour import ColourTransfer
from .fda import FourierAdapt
from .histogram import HistogramMatch

if TYPE_CHECKING:
    from ..nn.models import Refiner


class CameraThenResNet(nnx.Module):
    """The ResNet refines the camera model's output: R(x) = resnet(camera(x)), regularised
    against camera(x), so the ResNet learns only what a camera cannot explain."""

    def __init__(self, camera: Acquisition, resnet: Refiner):
        self.camera = camera
        self.resnet = resnet

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.anchored(x)[0]

    def anchored(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        seen = self.camera(x)
        return self.resnet(seen), seen

    def forward_with_features(self, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        return self.resnet.forward_with_features(self.camera(x))


def build_refiner(
    config: TrainConfig,
    channels: int,
    *,
    rngs: nnx.Rngs,
    dtype: Any = None,
    conv_fn: Any = jax.lax.conv_general_dilated,
) -> nnx.Module:
    """The refiner `config.refiner` names, for `channels`-channel images."""
    if config.refiner == "auto":
        from ..errors import ConfigError

        raise ConfigError("--refiner auto: a choice between kinds, not a network; name a kind")
    if config.refiner == "acquisition":
        return Acquisition(channels)
    if config.refiner == "histogram":
        return HistogramMatch(channels)
    if config.refiner == "fda":
        return FourierAdapt(channels, fda.half_width(config.size))
    if config.refiner == "colour":
        return ColourTransfer(channels)
    from ..nn.models import Refiner  # models imports this module

    resnet = Refiner(
        channels,
        config.refiner_width,
        config.refiner_blocks,
        config.refiner_kernel,
        dtype=dtype,
        rngs=rngs,
        conv_fn=conv_fn,
        residual=config.refiner_output == "residual",
    )
    if config.refiner == "acquisition+resnet":
        return CameraThenResNet(Acquisition(channels), resnet)
    return resnet


def anchored(refiner: nnx.Module, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(R(x), what self-regularisation compares R(x) with)."""
    if isinstance(refiner, CameraThenResNet):
        return refiner.anchored(x)
    return refiner(x), x


def camera_params(params: dict) -> dict | None:
    """The camera model's part of a refiner's pure parameter dict, or None without one."""
    if "bits_logit" in params:
        return params
    camera = params.get("camera")
    return camera if isinstance(camera, dict) and "bits_logit" in camera else None


def _fit_colour(config: TrainConfig, real: np.ndarray) -> dict[str, np.ndarray]:
    mean, std = colour.fit(real)
    return {"mean": mean, "std": std}


# Training-free kinds: their parameters (a pure-dict update) from the real training images.
_FITTED = {
    "histogram": lambda config, real: {"quantiles": histogram.fit(real)},
    "fda": lambda config, real: {"amplitude": fda.fit(real, fda.half_width(config.size))},
    "colour": _fit_colour,
}
TRAINING_FREE = tuple(_FITTED)


def _measure_camera(config: TrainConfig, real: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "bits_logit": np.asarray(
            acquisition.bits_logit_for(acquisition.levels_in(real)), np.float32
        )
    }


def fit_to_data(config: TrainConfig, state: Any, real: np.ndarray) -> Any:
    """The train state with what comes from the real training images (uint8/uint16 NHWC)
    before training: a training-free kind's parameters, a camera model's bit depth;
    other kinds' state unchanged."""
    fitter = _FITTED.get(config.refiner)
    camera = config.refiner in ("acquisition", "acquisition+resnet")
    if fitter is None and not camera:
        return state
    fitted = (fitter or _measure_camera)(config, real)

    def put(params):
        pure = nnx.to_pure_dict(params)
        # a buffer of its own for each of refiner and EMA: the training step donates both
        fresh = {name: jnp.array(value) for name, value in fitted.items()}
        (pure["camera"] if "camera" in pure else pure).update(fresh)
        nnx.replace_by_pure_dict(params, pure)
        return params

    return state.replace(refiner=put(state.refiner), ema=put(state.ema))


def draws_per_image(refiner: nnx.Module) -> bool:
    """True for a refiner with per-image random draws (a camera model): its output depends on
    a salt as well as the image (refine --variants, --seed)."""
    return any(isinstance(module, Acquisition) for _, module in nnx.iter_modules(refiner))


def set_salt(refiner: nnx.Module, salt: Any) -> None:
    """Key every camera model in `refiner` by `salt` (an int, or a traced int32 scalar inside
    jit, so that another salt reuses the compiled program)."""
    for _, module in nnx.iter_modules(refiner):
        if isinstance(module, Acquisition):
            module.salt = salt
