"""Colour statistics: the Frechet (2-Wasserstein) distance between Gaussians fitted to the
pixel colours of two sets, d^2 = |mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2).

Unlike per-channel histograms it sees the channels' covariance (saturation, white balance,
colour casts that keep each channel's spread). Per image: pixel sums (C) and sums of outer
products (C, C), so a bootstrap replicate's moments are count-weighted sums.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColourStats:
    sums: np.ndarray  # (n, C)
    outer: np.ndarray  # (n, C, C)
    pixels: int


def colour_stats(images: np.ndarray, chunk: int = 512) -> ColourStats:
    """Float NxHxWxC -> per-image colour sums and outer-product sums (float64)."""
    n, height, width, channels = images.shape
    sums = np.empty((n, channels))
    outer = np.empty((n, channels, channels))
    for start in range(0, n, chunk):
        part = (
            images[start : start + chunk].astype(np.float64).reshape(-1, height * width, channels)
        )
        sums[start : start + len(part)] = part.sum(axis=1)
        outer[start : start + len(part)] = np.matmul(part.transpose(0, 2, 1), part)
    return ColourStats(sums, outer, height * width)


def set_moments(stats: ColourStats, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Colour mean (R, C) and covariance (R, C, C) per replicate."""
    counts = counts.astype(np.float64)
    total = counts.sum(axis=1)[:, None] * stats.pixels
    mean = counts @ stats.sums / total
    c = stats.outer.shape[-1]
    second = (counts @ stats.outer.reshape(len(stats.outer), c * c)).reshape(-1, c, c)
    cov = second / total[:, :, None] - mean[:, :, None] * mean[:, None, :]
    return mean, cov


def _sqrt_psd(m: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(m)
    return (vectors * np.sqrt(np.maximum(values, 0.0))[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def colour_distance(
    mean_x: np.ndarray, cov_x: np.ndarray, mean_y: np.ndarray, cov_y: np.ndarray
) -> np.ndarray:
    """Squared 2-Wasserstein distance between the colour Gaussians, per replicate -> (R,)."""
    root_x = _sqrt_psd(cov_x)
    middle = np.linalg.eigvalsh(root_x @ cov_y @ root_x)
    cross = np.sqrt(np.maximum(middle, 0.0)).sum(axis=-1)
    trace = np.trace(cov_x, axis1=-2, axis2=-1) + np.trace(cov_y, axis1=-2, axis2=-1)
    return ((mean_x - mean_y) ** 2).sum(axis=-1) + np.maximum(trace - 2.0 * cross, 0.0)
