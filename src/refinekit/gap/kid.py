"""Kernel Inception Distance: the unbiased MMD^2 with the cubic polynomial kernel.

k(x, y) = (x . y / d + 1)^3 (Binkowski et al. 2018). The estimator is the U-statistic

    MMD^2_u = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j),

which is unbiased, so it is comparable across set sizes (and can be slightly negative).

Bootstrap replicates come as count vectors (how often each image was drawn). An image drawn
twice would be paired with itself, which biases the within-set means upwards, so those sums
leave out every pair of draws of the same image: c^T K c - sum_i c_i^2 k_ii, divided by the
(sum c)^2 - sum c_i^2 remaining pairs. With all counts 1 that is the plain U-statistic.

The kernel sums run in JAX in float64, in row blocks (memory O(block * n)); rows are padded
to whole blocks with zero counts, which add nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .x64 import pad_rows, x64

BLOCK_ROWS = 512


@lru_cache(maxsize=1)
def _weighted_kernel_sum():
    """Jitted sum_r-wise c_x^T K(x, y) c_y over row blocks of x -> (R,)."""
    import jax
    import jax.numpy as jnp

    def run(x_blocks, cx_blocks, y, cy):
        d = y.shape[1]

        def one(carry, block):
            xb, cb = block
            k = (xb @ y.T / d + 1.0) ** 3  # (b, m)
            return carry + jnp.einsum("rb,rb->r", cb, cy @ k.T), None

        start = jnp.zeros(cy.shape[0], cy.dtype)
        total, _ = jax.lax.scan(one, start, (x_blocks, cx_blocks))
        return total

    return jax.jit(run)


def _blocks(x: np.ndarray, counts: np.ndarray):
    xp = pad_rows(x, BLOCK_ROWS)
    cp = pad_rows(counts.T, BLOCK_ROWS).T
    nb = len(xp) // BLOCK_ROWS
    x_blocks = xp.reshape(nb, BLOCK_ROWS, x.shape[1])
    c_blocks = cp.reshape(len(counts), nb, BLOCK_ROWS).transpose(1, 0, 2)
    return x_blocks, c_blocks


@x64
def _pair_sum(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    x_blocks, c_blocks = _blocks(np.asarray(x, np.float64), np.asarray(cx, np.float64))
    out = _weighted_kernel_sum()(
        x_blocks, c_blocks, np.asarray(y, np.float64), np.asarray(cy, np.float64)
    )
    return np.asarray(out)


def within_term(x: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean of k over pairs of draws of distinct images within one set, per replicate.

    x: (n, d) features; counts: (R, n) draws per image per replicate -> (R,).
    """
    counts = np.asarray(counts, np.float64)
    total = _pair_sum(x, x, counts, counts)
    diagonal = (np.einsum("nd,nd->n", x, x) / x.shape[1] + 1.0) ** 3
    total = total - (counts**2) @ diagonal
    pairs = counts.sum(axis=1) ** 2 - (counts**2).sum(axis=1)
    return total / pairs


def cross_term(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
    """Mean of k(x_i, y_j) over all pairs of draws, per replicate -> (R,)."""
    cx, cy = np.asarray(cx, np.float64), np.asarray(cy, np.float64)
    return _pair_sum(x, y, cx, cy) / (cx.sum(axis=1) * cy.sum(axis=1))


def kid(
    x: np.ndarray,
    y: np.ndarray,
    cx: np.ndarray | None = None,
    cy: np.ndarray | None = None,
    y_within: np.ndarray | None = None,
) -> np.ndarray:
    """Unbiased MMD^2 between feature sets x (n, d) and y (m, d), per replicate -> (R,).

    Without counts, one replicate with every image once (the plain estimate).
    y_within: within_term(y, cy), when the caller reuses it across several x.
    """
    cx = np.ones((1, len(x))) if cx is None else cx
    cy = np.ones((1, len(y))) if cy is None else cy
    if y_within is None:
        y_within = within_term(y, cy)
    return within_term(x, cx) + y_within - 2.0 * cross_term(x, y, cx, cy)
