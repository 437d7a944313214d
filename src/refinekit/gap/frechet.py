"""Frechet distance between Gaussians fitted to two feature sets (the formula of FID).

    d^2 = |mu_x - mu_y|^2 + tr(S_x) + tr(S_y) - 2 tr((S_x S_y)^1/2)

tr((S_x S_y)^1/2) is the sum of square roots of the eigenvalues of S_x S_y, which equal those
of the symmetric PSD matrix L^T S_x L for the Cholesky factor S_y = L L^T: one Cholesky and one
symmetric eigenvalue problem per pair, no matrix square root. A tiny ridge (1e-10 of the mean
variance) keeps the Cholesky defined when S_y is singular (fewer images than features).

Unlike KID the estimate is biased upwards (roughly by tr(S)/n per set), and unreliable when a
set has few images per feature; `small_set_flag` says so.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .x64 import x64

# Below this many images per feature the estimate is dominated by its bias.
MIN_IMAGES_PER_FEATURE = 2
RIDGE = 1e-10


@lru_cache(maxsize=1)
def _moments():
    import jax

    def run(x, counts):
        totals = counts.sum(axis=1)
        means = counts @ x / totals[:, None]

        def cov(args):
            c, mean, total = args
            centred = x - mean
            return (centred * c[:, None]).T @ centred / (total - 1.0)

        return means, jax.lax.map(cov, (counts, means, totals))

    return jax.jit(run)


@lru_cache(maxsize=1)
def _cholesky_sandwich():
    import jax
    import jax.numpy as jnp

    def run(cov_x, cov_y):
        d = cov_y.shape[-1]
        ridge = RIDGE * jnp.trace(cov_y, axis1=-2, axis2=-1)[..., None, None] / d
        chol = jnp.linalg.cholesky(cov_y + ridge * jnp.eye(d))
        middle = jnp.swapaxes(chol, -1, -2) @ cov_x @ chol
        return (middle + jnp.swapaxes(middle, -1, -2)) / 2  # exactly symmetric

    return jax.jit(run)


@x64
def weighted_moments(x: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (R, d) and unbiased covariance (R, d, d) of x (n, d) for each count vector (R, n)."""
    means, covs = _moments()(np.asarray(x, np.float64), np.asarray(counts, np.float64))
    return np.asarray(means), np.asarray(covs)


@x64
def frechet_distance(
    mean_x: np.ndarray, cov_x: np.ndarray, mean_y: np.ndarray, cov_y: np.ndarray
) -> np.ndarray:
    """Squared Frechet distance for stacked moments (R, d) and (R, d, d) -> (R,)."""
    middle = np.asarray(_cholesky_sandwich()(np.asarray(cov_x), np.asarray(cov_y)))
    trace_root = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum(axis=-1)
    mean_term = ((mean_x - mean_y) ** 2).sum(axis=-1)
    traces = np.trace(cov_x, axis1=-2, axis2=-1) + np.trace(cov_y, axis1=-2, axis2=-1)
    return mean_term + traces - 2.0 * trace_root


def small_set_flag(sizes: dict[str, int], dim: int) -> str | None:
    """A warning when any set has fewer than MIN_IMAGES_PER_FEATURE x dim images."""
    need = MIN_IMAGES_PER_FEATURE * dim
    small = {name: n for name, n in sizes.items() if n < need}
    if not small:
        return None
    listed = ", ".join(f"{name} {n}" for name, n in small.items())
    return (
        f"sets smaller than {need} images ({MIN_IMAGES_PER_FEATURE} x {dim} features: {listed}): "
        "the covariance is poorly estimated and the distance biased upwards; compare KID instead"
    )
