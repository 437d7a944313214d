"""Colour and intensity statistics transfer (Reinhard et al. 2001) as a refiner: a training-free
baseline.

Each image, per channel, is shifted and scaled so that its mean and standard deviation are the
real set's (pooled over every pixel of every real training image):

    out = (u - mean_image) / max(std_image, MIN_STD) * std_real + mean_real,  clipped to [0, 1]

A positive gain and an offset per channel: monotone within an image, no pixel moves, so labels
stay valid by construction. Gray images are the one-channel case of the same formula.

Per channel in RGB, not in Reinhard's l-alpha-beta space: that space is logarithmic, undefined
at the exact black that renders are full of (an epsilon would then decide the dark regions), and
its per-axis matching does not match RGB's moments either. A gain per RGB channel is a von Kries
white balance plus an exposure and contrast change, the commonest colour gap between a renderer
and a camera, and it makes each channel's mean and spread exactly the real set's (up to the
clipping), which is what gap-report's mean/std shift measures. What it cannot change is the
mix between channels (saturation, a hue rotation): `acquisition`'s colour stage can.

The two moments per channel are the only parameters; train fills them from the real training
images (`fit`) and runs no step (presets.REFINER_DEFAULTS), so the run folder holds one
checkpoint. Deterministic: the same image gives the same output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# An image's spread is floored here (a quarter of an 8-bit level) so that a flat channel is set
# to the real mean rather than divided by zero, and near-flat noise is not blown up to full
# contrast.
MIN_STD = 1.0 / 1024


class ColourTransfer(nnx.Module):
    """x (N, H, W, C) in [-1, 1] -> each image with the real set's mean and std, per channel."""

    def __init__(self, channels: int):
        # A placeholder (the moments of a uniform distribution on [0, 1]) until fit() fills it.
        self.mean = nnx.Param(jnp.full((channels,), 0.5, jnp.float32))
        self.std = nnx.Param(jnp.full((channels,), 1.0 / np.sqrt(12.0), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        u = (x.astype(jnp.float32) + 1.0) * 0.5
        out = transfer(u, self.mean[...], self.std[...])
        return jnp.clip(out, 0.0, 1.0) * 2.0 - 1.0


def transfer(u: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
    """Images u (N, H, W, C) in [0, 1] with each channel's mean and std set to `mean`, `std`
    (C,); not clipped."""
    own_mean = u.mean(axis=(1, 2), keepdims=True)
    own_std = jnp.sqrt(((u - own_mean) ** 2).mean(axis=(1, 2), keepdims=True))
    return (u - own_mean) / jnp.maximum(own_std, MIN_STD) * std + mean


def fit(real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pooled per-channel mean and std (C,) of real images (N, H, W, C) uint8/uint16."""
    top = float(np.iinfo(real.dtype).max) if np.issubdtype(real.dtype, np.integer) else 1.0
    values = real.reshape(-1, real.shape[-1]).astype(np.float64) / top
    return values.mean(axis=0).astype(np.float32), values.std(axis=0).astype(np.float32)
