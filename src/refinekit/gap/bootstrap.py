"""Bootstrap resampling as count vectors, percentile intervals, and "gap closed".

Every metric is computed once per replicate from count vectors (how many times each image is
drawn), so all metrics and all comparisons in one replicate share one resample of each set:
the real reference half is resampled once per replicate and used by every comparison, and a
refined set paired with the synthetic set (one refined image per synthetic image) shares the
synthetic set's draws. Row 0 of every count matrix is all ones: the point estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95


def count_matrix(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(1 + replicates, n) int32 draws per image: a row of ones, then multinomial resamples."""
    counts = np.empty((1 + replicates, n), np.int32)
    counts[0] = 1
    if replicates:
        counts[1:] = rng.multinomial(n, np.full(n, 1.0 / n), size=replicates)
    return counts


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap percentile interval."""

    value: float
    low: float
    high: float

    @classmethod
    def from_replicates(cls, values: np.ndarray) -> Estimate:
        """values[0] is the point estimate, values[1:] the bootstrap replicates.

        The interval is the point estimate plus the 2.5th and 97.5th percentiles of the
        replicates' deviations from their median: the percentile interval with the
        bootstrap's own bias taken out. Resampling with replacement duplicates images, which
        inflates biased statistics (the Frechet distance, absolute differences) and deflates
        coverage, so plain percentiles can miss the estimate altogether; the bias at a given
        set size is what the real-vs-real floor measures.
        """
        point = float(values[0])
        if len(values) < 2:
            return cls(point, point, point)
        tail = (1.0 - CONFIDENCE) / 2 * 100
        replicates = values[1:]
        low, high = np.percentile(replicates - np.median(replicates), [tail, 100 - tail])
        return cls(point, point + float(low), point + float(high))

    def clipped(self, low: float, high: float) -> Estimate:
        """The interval clipped to the values the metric can take (the point is inside them)."""
        return Estimate(self.value, max(self.low, low), min(self.high, high))

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict:
        return {"value": self.value, "low": self.low, "high": self.high}


def gap_closed(d_synthetic: np.ndarray, d_refined: np.ndarray, d_floor: np.ndarray) -> np.ndarray:
    """(d(S,R) - d(F,R)) / (d(S,R) - d(Ra,Rb)) per replicate: 0 = no change, 1 = as real as real."""
    denominator = d_synthetic - d_floor
    with np.errstate(divide="ignore", invalid="ignore"):
        return (d_synthetic - d_refined) / denominator
