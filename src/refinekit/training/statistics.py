"""Matching how images vary, not only how each patch looks (`--lambda-stats`).

A local patch discriminator judges patches one at a time, so it cannot see that every refined
image got the same camera while real images each got their own: a camera model whose per-image
spreads (gain, cast, blur, noise level) stay at their start is as good to it as one that varies
like the real set, and on a set of coloured images with a different cast each, the
discriminator alone pushed the camera to one grey compromise. This term compares the
distribution over images of a few per-image statistics (brightness and contrast per channel,
edge energy, fine-detail energy, saturation) between a refined and a real batch: a sliced
Wasserstein distance along each statistic (sort both, compare in order), each statistic in
units of its spread over the real batch. It sees only numbers a camera changes, so it is used
with the camera model, whose parameters cannot move pixels.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# A statistic's unit is its spread over the real batch, but never below this (in [0, 1]
# pixel units): a statistic all real images share would otherwise weigh without bound.
MIN_UNIT = 0.01


def image_statistics(images: jax.Array) -> jax.Array:
    """(B, S) per-image statistics of (B, H, W, C) images in [-1, 1]: per channel the mean and
    the std, the mean absolute neighbour difference (edges, blur), the mean absolute residual of
    a 3x3 mean (fine detail, noise), and for RGB the mean per-pixel channel spread (saturation)."""
    u = (images.astype(jnp.float32) + 1.0) * 0.5
    mean = u.mean(axis=(1, 2))
    std = _std(u, (1, 2))
    edges = 0.5 * (
        jnp.abs(jnp.diff(u, axis=1)).mean(axis=(1, 2, 3))
        + jnp.abs(jnp.diff(u, axis=2)).mean(axis=(1, 2, 3))
    )
    padded = jnp.pad(u, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="edge")
    h, w = u.shape[1:3]
    local = sum(padded[:, i : i + h, j : j + w] for i in range(3) for j in range(3)) / 9.0
    detail = jnp.abs(u - local).mean(axis=(1, 2, 3))
    columns = [mean, std, edges[:, None], detail[:, None]]
    if u.shape[-1] == 3:
        columns.append(_std(u, -1).mean(axis=(1, 2))[:, None])
    return jnp.concatenate(columns, axis=1)


def _std(u: jax.Array, axis) -> jax.Array:
    """A standard deviation with a finite gradient where it is 0 (a flat image, a grey pixel)."""
    return jnp.sqrt(u.var(axis=axis) + 1e-8)


def statistics_distance(refined: jax.Array, real: jax.Array) -> jax.Array:
    """Mean over statistics of the squared sliced Wasserstein-2 distance between the refined and
    the real batch's per-image statistics, each in units of its real spread (no gradient
    through the unit). Batches of different sizes are compared at matching quantiles."""
    a, b = image_statistics(refined), image_statistics(real)
    unit = jax.lax.stop_gradient(jnp.maximum(b.std(axis=0), MIN_UNIT))
    a, b = jnp.sort(a / unit, axis=0), jnp.sort(b / unit, axis=0)
    if a.shape[0] != b.shape[0]:
        q = (jnp.arange(a.shape[0]) + 0.5) / a.shape[0]
        b = jnp.quantile(b, q, axis=0)
    return jnp.mean((a - b) ** 2)
