"""Per-channel intensity histograms: Wasserstein-1 distance, and mean / std shift.

Each image contributes a 256-bin histogram per channel over [0, 1] and its pixel sums, so a
bootstrap replicate's set statistics are count-weighted sums. W1 between two 1-D distributions
is the area between their CDFs: sum |CDF_x - CDF_y| * bin width (exact up to the bin width,
1/256 of the range).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 256


@dataclass(frozen=True)
class PixelStats:
    """Per image: histograms (n, C, BINS), pixel sums and sums of squares (n, C), pixels per channel."""

    histograms: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    pixels: int


def pixel_stats(images: np.ndarray, chunk: int = 512) -> PixelStats:
    """Float NxHxWxC in [0, 1] -> per-image histograms and moments (in chunks, to bound memory)."""
    n, height, width, channels = images.shape
    histograms = np.empty((n, channels, BINS))
    sums = np.empty((n, channels))
    squares = np.empty((n, channels))
    for start in range(0, n, chunk):
        part = images[start : start + chunk]
        b = len(part)
        bins = np.clip((part * BINS).astype(np.int64), 0, BINS - 1)  # 1.0 goes in the top bin
        # One bincount over (image, channel, bin) cells.
        cell = (np.arange(b)[:, None, None, None] * channels + np.arange(channels)) * BINS + bins
        counted = np.bincount(cell.ravel(), minlength=b * channels * BINS)
        histograms[start : start + b] = counted.reshape(b, channels, BINS)
        values = part.astype(np.float64)
        sums[start : start + b] = values.sum(axis=(1, 2))
        squares[start : start + b] = (values**2).sum(axis=(1, 2))
    return PixelStats(histograms, sums, squares, height * width)


def set_histograms(stats: PixelStats, counts: np.ndarray) -> np.ndarray:
    """Normalised histograms per replicate and channel: (R, C, BINS)."""
    n, channels, bins = stats.histograms.shape
    flat = counts.astype(np.float64) @ stats.histograms.reshape(n, channels * bins)
    hist = flat.reshape(len(counts), channels, bins)
    return hist / hist.sum(axis=-1, keepdims=True)


def set_moments(stats: PixelStats, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel mean and standard deviation per replicate and channel: (R, C) each."""
    counts = counts.astype(np.float64)
    total = counts.sum(axis=1, keepdims=True) * stats.pixels
    mean = counts @ stats.sums / total
    second = counts @ stats.squares / total
    return mean, np.sqrt(np.maximum(second - mean**2, 0.0))


def wasserstein1(hist_x: np.ndarray, hist_y: np.ndarray) -> np.ndarray:
    """W1 between normalised histograms on [0, 1], along the last axis."""
    return np.abs(np.cumsum(hist_x - hist_y, axis=-1)).sum(axis=-1) / BINS
