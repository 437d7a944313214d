"""Antialiased resizing and random crops of float HxWxC images (how sets reach one size)."""

from __future__ import annotations

import numpy as np


def resize_matrix(in_size: int, out_size: int) -> np.ndarray:
    """(out, in) weights of an antialiased linear (triangle) filter.

    On downscaling the triangle is widened by the scale factor, so every input pixel
    contributes (no aliasing); on upscaling it is plain linear interpolation.
    """
    scale = in_size / out_size
    support = max(scale, 1.0)
    centres = (np.arange(out_size) + 0.5) * scale - 0.5
    taps = np.arange(in_size)
    weights = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / support)
    sums = weights.sum(axis=1, keepdims=True)
    # An output whose window lies off the image edge takes its nearest input pixel.
    nearest = np.clip(np.round(centres).astype(int), 0, in_size - 1)
    empty = sums[:, 0] == 0
    weights[empty, nearest[empty]] = 1.0
    sums[empty] = 1.0
    return (weights / sums).astype(np.float32)


def resize(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Antialiased resize of float HxWxC to `size` = (H, W)."""
    h, w = array.shape[:2]
    if (h, w) == tuple(size):
        return array
    rows = resize_matrix(h, size[0])
    cols = resize_matrix(w, size[1])
    return np.einsum("ih,hwc,jw->ijc", rows, array.astype(np.float32), cols, optimize=True)


def random_crop(array: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random `size` crop; images smaller than `size` are first resized up to cover it."""
    h, w = array.shape[:2]
    if h < size[0] or w < size[1]:
        factor = max(size[0] / h, size[1] / w)
        array = resize(array, (max(size[0], round(h * factor)), max(size[1], round(w * factor))))
        h, w = array.shape[:2]
    top = int(rng.integers(0, h - size[0] + 1))
    left = int(rng.integers(0, w - size[1] + 1))
    return array[top : top + size[0], left : left + size[1]]
