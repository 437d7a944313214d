"""Forward passes a few images at a time, for XLA:CPU's caches.

On the 2-core CPU machine the refiner's forward pass runs 1.3-1.5x faster when a batch is fed
through it a few images at a time (a `lax.scan` over micro-batches inside one program) than as
one batch: the activations of a few images stay in the CPU caches between layers
(docs/performance.md). The best size was about 8,000 pixels per micro-batch: 4 images of 35x55, 1-2 of
64x64, 1 of 128x128. Only forward passes: for gradients a rolled scan is the slow path on
XLA:CPU and splitting gained nothing. Accelerators and several devices get whole batches.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

PIXELS = 8192  # target pixels per micro-batch on CPU


def auto_size(height: int, width: int) -> int:
    """The largest power of two of images with at most PIXELS pixels in all (at least 1)."""
    images = max(1, PIXELS // max(1, height * width))
    return 1 << (images.bit_length() - 1)


def resolve(requested: int | None, height: int, width: int) -> int:
    """Images per micro-batch: `requested` if given (0: whole batches); else auto_size on a
    single CPU device and 0 elsewhere."""
    if requested is not None:
        return requested
    if jax.default_backend() == "cpu" and jax.local_device_count() == 1:
        return auto_size(height, width)
    return 0


def effective(size: int, total: int) -> int:
    """The micro-batch `forward` really uses for `total` images: `size`, or 0 (one pass)."""
    return size if 0 < size < total else 0


def forward(fn: Callable[[jax.Array], jax.Array], images: jax.Array, size: int) -> jax.Array:
    """`fn(images)` computed `size` images at a time (the last micro-batch zero-padded).

    `fn` must treat images independently (no batch statistics), as the refiner does.
    """
    total = images.shape[0]
    if not effective(size, total):
        return fn(images)
    count = -(-total // size)
    padded = jnp.pad(images, [(0, count * size - total)] + [(0, 0)] * (images.ndim - 1))
    chunks = padded.reshape(count, size, *images.shape[1:])
    _, out = jax.lax.scan(lambda carry, chunk: (carry, fn(chunk)), None, chunks)
    return out.reshape(count * size, *out.shape[2:])[:total]
