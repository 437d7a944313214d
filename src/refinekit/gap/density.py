"""Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics").

Around each real (reference) feature vector draw the ball reaching its k-th nearest real
neighbour. Density: how many of those balls a sample falls in, on average, over k (about 1
when the two sets match; above 1 when samples crowd into dense real regions). Coverage: the
fraction of real balls that hold at least one sample (it drops when a refiner collapses
diversity). Both use strict "<", as the authors' code does.

Bootstrap: the radii come from the whole reference set and stay fixed; a replicate reweights
which reference points and samples are drawn. The sums run in JAX (float64) over row blocks
of the reference; padded rows have zero counts and add nothing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .x64 import pad_rows, x64

K = 5
BLOCK_ROWS = 512


def _squared_distances(a, b):
    import jax.numpy as jnp

    d2 = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return jnp.maximum(d2, 0.0)


@lru_cache(maxsize=4)
def _radii_fn(k: int):
    import jax

    def run(blocks, reference):
        def one(block):
            # The nearest "neighbour" is the point itself (distance 0), so the k-th is index k.
            smallest = -jax.lax.top_k(-_squared_distances(block, reference), k + 1)[0]
            return smallest[:, k]

        return jax.lax.map(one, blocks)

    return jax.jit(run)


@x64
def neighbour_radii(reference: np.ndarray, k: int = K) -> np.ndarray:
    """Squared distance from each reference point to its k-th nearest other reference point."""
    if len(reference) <= k:
        raise ValueError(
            f"density/coverage need more than k={k} reference images, got {len(reference)}"
        )
    reference = np.asarray(reference, np.float64)
    blocks = pad_rows(reference, BLOCK_ROWS).reshape(-1, BLOCK_ROWS, reference.shape[1])
    radii = np.asarray(_radii_fn(k)(blocks, reference)).reshape(-1)
    return radii[: len(reference)]


@lru_cache(maxsize=1)
def _sums_fn():
    import jax
    import jax.numpy as jnp

    def run(ref_blocks, radii_blocks, c_ref_blocks, samples, c_samples):
        drawn = (c_samples > 0).astype(c_samples.dtype)

        def one(carry, block):
            ref, radii, c_ref = block  # (b, d), (b,), (R, b)
            inside = (_squared_distances(ref, samples) < radii[:, None]).astype(samples.dtype)
            hits, covered = carry
            hits = hits + jnp.einsum("rb,rb->r", c_ref, c_samples @ inside.T)
            any_inside = (drawn @ inside.T) > 0  # (R, b)
            covered = covered + (c_ref * any_inside).sum(axis=1)
            return (hits, covered), None

        zeros = jnp.zeros(c_samples.shape[0], samples.dtype)
        (hits, covered), _ = jax.lax.scan(
            one, (zeros, zeros), (ref_blocks, radii_blocks, c_ref_blocks)
        )
        return hits, covered

    return jax.jit(run)


@x64
def density_coverage(
    reference: np.ndarray,
    radii: np.ndarray,
    samples: np.ndarray,
    c_ref: np.ndarray,
    c_samples: np.ndarray,
    k: int = K,
) -> tuple[np.ndarray, np.ndarray]:
    """Density and coverage of `samples` per replicate of counts (R, n_ref), (R, n) -> (R,), (R,)."""
    reference = np.asarray(reference, np.float64)
    c_ref = np.asarray(c_ref, np.float64)
    c_samples = np.asarray(c_samples, np.float64)
    ref_blocks = pad_rows(reference, BLOCK_ROWS).reshape(-1, BLOCK_ROWS, reference.shape[1])
    radii_blocks = pad_rows(np.asarray(radii, np.float64), BLOCK_ROWS).reshape(-1, BLOCK_ROWS)
    c_blocks = pad_rows(c_ref.T, BLOCK_ROWS).reshape(-1, BLOCK_ROWS, len(c_ref)).transpose(0, 2, 1)
    hits, covered = _sums_fn()(
        ref_blocks, radii_blocks, c_blocks, np.asarray(samples, np.float64), c_samples
    )
    ref_total = c_ref.sum(axis=1)
    # A reference point drawn c times counts c times; scaled so the mean weight is 1.
    density = np.asarray(hits) * (len(reference) / ref_total) / (k * c_samples.sum(axis=1))
    coverage = np.asarray(covered) / ref_total
    return density, coverage
