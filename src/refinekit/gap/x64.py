"""Float64 JAX for the statistics' heavy linear algebra.

The metrics' sums (kernel sums, covariances, distances) run in JAX rather than NumPy because
XLA's CPU thread pool degrades gracefully on a busy machine, where multi-threaded OpenBLAS
was measured 10x slower than one thread. They need float64 (small differences of large
sums), so each entry point runs inside `jax.enable_x64(True)`, scoped to the call: nothing
is changed globally.
"""

from __future__ import annotations

import functools

import numpy as np


def x64(fn):
    """Run `fn` (which traces and calls jitted JAX code) with 64-bit JAX types enabled."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax

        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper


def pad_rows(a: np.ndarray, multiple: int) -> np.ndarray:
    """Zero rows appended so len(a) is a multiple of `multiple` (at least one block)."""
    rows = max(multiple, -(-len(a) // multiple) * multiple)
    if rows == len(a):
        return a
    pad = np.zeros((rows - len(a), *a.shape[1:]), a.dtype)
    return np.concatenate([a, pad])
