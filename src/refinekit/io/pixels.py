"""Pixel values in the two float conventions, and fixed-size batches.

Stored images are uint8 or uint16. Files, refine and gap-report work in float [0, 1] ("unit");
the networks see float [-1, 1] ("model range"). Every conversion between them lives here, and
each works on NumPy and JAX arrays alike (no JAX import: io/ stays JAX-free).
"""

from __future__ import annotations

import numpy as np

from ..errors import DataError

# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def integer_scale(dtype) -> float:
    """The largest stored value: 65535 for uint16, 255 otherwise."""
    return 65535.0 if dtype == np.uint16 else 255.0


def to_unit_float(array):
    """Stored uint8/uint16 -> float32 in [0, 1]."""
    return array.astype(np.float32) / np.float32(integer_scale(array.dtype))


def to_model_range(array):
    """Stored uint8/uint16 -> float32 in [-1, 1], as the networks see it."""
    return array.astype(np.float32) * np.float32(2.0 / integer_scale(array.dtype)) - 1.0


def quantise(unit: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [0, 1] -> uint8, or uint16 for bit_depth 16 (the inverse of to_unit_float)."""
    if bit_depth == 16:
        return np.round(unit * 65535).astype(np.uint16)
    return np.round(unit * 255).astype(np.uint8)


def unit_to_uint8(images: np.ndarray) -> np.ndarray:
    """float [0, 1] (clipped) -> uint8, for pictures in reports."""
    return quantise(np.clip(images, 0.0, 1.0), 8)


def model_to_uint8(images: np.ndarray) -> np.ndarray:
    """float [-1, 1] (clipped) -> uint8, for sample grids."""
    return np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)


def pad_to_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Zero images appended up to `size`, so every call of a jitted function has one shape
    (one compile); callers keep only the first len(batch) results."""
    if len(batch) >= size:
        return batch
    return np.concatenate([batch, np.zeros((size - len(batch), *batch.shape[1:]), batch.dtype)])


def colour_channels(array: np.ndarray) -> np.ndarray:
    """Drop the alpha channel: 2 -> 1 (gray+alpha) and 4 -> 3 (RGBA)."""
    if array.shape[-1] in (2, 4):
        return array[..., :-1]
    return array


def convert_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Float HxWxC (alpha already dropped) -> HxWx`channels`, the way training converts.

    gray -> RGB repeats the channel; RGB -> gray takes BT.601 luma.
    """
    have = array.shape[-1]
    if have == channels:
        return array
    if have == 1 and channels == 3:
        return np.repeat(array, 3, axis=-1)
    if have == 3 and channels == 1:
        return (array @ LUMA)[..., None].astype(np.float32)
    raise DataError(f"cannot convert a {have}-channel image to {channels} channels")
