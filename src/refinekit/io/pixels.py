"""Decoded pixels -> the float [0, 1] colour channels a model sees (training, refine, gap)."""

from __future__ import annotations

import numpy as np

from ..errors import DataError

# ITU-R BT.601 luma weights, the ones Pillow uses for RGB -> L.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def to_unit_float(array: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1]."""
    scale = 65535.0 if array.dtype == np.uint16 else 255.0
    return array.astype(np.float32) / np.float32(scale)


def quantise(unit: np.ndarray, bit_depth: int) -> np.ndarray:
    """float [0, 1] -> uint8, or uint16 for bit_depth 16 (the inverse of to_unit_float)."""
    if bit_depth == 16:
        return np.round(unit * 65535).astype(np.uint16)
    return np.round(unit * 255).astype(np.uint8)


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
