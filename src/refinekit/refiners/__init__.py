"""Refiner kinds: one module each, built here from the config's `refiner` setting.

A refiner is an `nnx.Module` mapping NHWC images in [-1, 1] to refined images of the same
shape; `anchored(x)` also returns what self-regularisation compares the output with (the input
for a single kind, the camera model's output for `acquisition+resnet`). A new kind is one
module in this folder, one branch in `build_refiner`, and its name in config.REFINERS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ..config import TrainConfig
from .acquisition import Acquisition
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
    if config.refiner == "acquisition":
        return Acquisition(channels)
    if config.refiner == "histogram":
        return HistogramMatch(channels)
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


def fit_to_data(config: TrainConfig, state: Any, real: np.ndarray) -> Any:
    """The train state with a training-free kind's parameters computed from the real training
    images (uint8/uint16 NHWC); other kinds' state unchanged."""
    if config.refiner != "histogram":
        return state
    from . import histogram

    table = jnp.asarray(histogram.fit(real))

    def put(params):
        pure = nnx.to_pure_dict(params)
        pure["quantiles"] = table
        nnx.replace_by_pure_dict(params, pure)
        return params

    return state.replace(refiner=put(state.refiner), ema=put(state.ema))
