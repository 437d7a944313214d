"""The history buffer of refined images (Shrivastava et al. 2017, Sec. 2.3), on device.

A frozen state plus pure `init` / `add` / `sample`, in the shape of flashbax's buffers. The
capacity is a multiple of the number of images added per step, so appending fills it exactly;
once full, each `add` overwrites that many distinct random slots.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class HistoryBuffer:
    images: jax.Array  # (capacity, H, W, C) float32
    count: jax.Array  # int32 scalar: slots written so far (<= capacity)
    labels: jax.Array  # int32 (capacity,): each image's class, -1 when unknown

    @property
    def capacity(self) -> int:
        return self.images.shape[0]


def init(capacity: int, image_shape: tuple[int, ...], dtype=jnp.float32) -> HistoryBuffer:
    return HistoryBuffer(
        jnp.zeros((capacity, *image_shape), dtype),
        jnp.zeros((), jnp.int32),
        jnp.full((capacity,), -1, jnp.int32),
    )


def add(
    buffer: HistoryBuffer, images: jax.Array, key: jax.Array, labels: jax.Array | None = None
) -> HistoryBuffer:
    """Append `images` (n, ...) while there is room, else overwrite n distinct random slots.

    labels: int (n,) classes stored beside the images (-1 when None)."""
    n, capacity = images.shape[0], buffer.capacity
    if capacity % n:
        raise ValueError(
            f"buffer capacity {capacity} is not a multiple of the {n} images added per step"
        )
    full = buffer.count >= capacity
    appended = buffer.count + jnp.arange(n, dtype=jnp.int32)
    replaced = jax.random.choice(key, capacity, (n,), replace=False).astype(jnp.int32)
    slots = jnp.where(full, replaced, appended)
    new_images = buffer.images.at[slots].set(images.astype(buffer.images.dtype))
    if labels is None:
        labels = jnp.full((n,), -1, jnp.int32)
    new_labels = buffer.labels.at[slots].set(labels.astype(jnp.int32))
    return HistoryBuffer(new_images, jnp.minimum(buffer.count + n, capacity), new_labels)


def can_sample(buffer: HistoryBuffer, n: int) -> jax.Array:
    """True once the buffer holds at least n images."""
    return buffer.count >= n


def sample(buffer: HistoryBuffer, n: int, key: jax.Array) -> jax.Array:
    """n images drawn uniformly (with replacement) from the written slots only."""
    return sample_labelled(buffer, n, key)[0]


def sample_labelled(buffer: HistoryBuffer, n: int, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(images, labels) of n slots drawn as `sample` draws them (same key, same slots)."""
    idx = jax.random.randint(key, (n,), 0, jnp.maximum(buffer.count, 1))
    return buffer.images[idx], buffer.labels[idx]
