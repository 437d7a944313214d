"""Histogram matching as a refiner: a training-free baseline.

Each image's pixel ranks, per channel, are mapped onto the real set's pooled intensity
quantiles, so every refined image has the real set's intensity histogram. It is monotone within
an image and moves no pixel: labels stay valid by construction, and edges keep their place. It
cannot blur, add grain or change a colour mix; `acquisition` can.

The quantile table is the only parameter; train fills it from the real training images
(`fit`) and runs no step (presets.REFINER_DEFAULTS), so the run folder holds one checkpoint.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

QUANTILES = 256


class HistogramMatch(nnx.Module):
    """x (N, H, W, C) in [-1, 1] -> each image with the real set's histogram, per channel."""

    def __init__(self, channels: int):
        # A placeholder (uniform quantiles: histogram equalisation) until fit() fills it.
        grid = (jnp.arange(QUANTILES, dtype=jnp.float32) + 0.5) / QUANTILES
        self.quantiles = nnx.Param(jnp.tile(grid, (channels, 1)))  # (C, Q) in [0, 1]

    def __call__(self, x: jax.Array) -> jax.Array:
        u = (x.astype(jnp.float32) + 1.0) * 0.5
        n, h, w, c = u.shape
        flat = u.reshape(n, h * w, c)
        # Each pixel's rank in its image and channel (ties broken by position), as a quantile.
        ranks = jnp.argsort(jnp.argsort(flat, axis=1, stable=True), axis=1, stable=True)
        level = (ranks.astype(jnp.float32) + 0.5) / (h * w)
        table = self.quantiles[...]
        grid = (jnp.arange(QUANTILES, dtype=jnp.float32) + 0.5) / QUANTILES
        mapped = jnp.stack(
            [jnp.interp(level[..., ch], grid, table[ch]) for ch in range(c)], axis=-1
        )
        return mapped.reshape(n, h, w, c) * 2.0 - 1.0


def fit(real: np.ndarray) -> np.ndarray:
    """The quantile table (C, QUANTILES) of real images (N, H, W, C) uint8/uint16."""
    top = float(np.iinfo(real.dtype).max) if np.issubdtype(real.dtype, np.integer) else 1.0
    values = real.reshape(-1, real.shape[-1]).astype(np.float64) / top
    levels = (np.arange(QUANTILES) + 0.5) / QUANTILES
    return np.stack([np.quantile(values[:, ch], levels) for ch in range(values.shape[1])]).astype(
        np.float32
    )
