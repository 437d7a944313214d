"""The downstream score of a training set: a small CNN (classifier.py) trained on it, from a few
seeds, tested on labelled real images; and whether one training set beats another beyond noise.

Inputs are standardised per channel by the training set's mean and spread, as users normalise
what their networks see: without it a candidate that lowers contrast (a camera model does) trains
this short-lived CNN more slowly rather than worse, and on a harness case the score ranked the
oracle below raw synthetic where an independent CNN judge ranked it 9 points above. MAX_TRAIN is
2,048 for the same reason: with 512 images the score tracked the independent judge on fewer
cases (the measurement: docs/evaluation.md, "The downstream score's judge").

Noise has two sources: the CNN's seed (averaged over SEEDS) and which real images happen to be
in the test set (a bootstrap over them, paired when two candidates are compared on the same
images: the comparison asks about the difference, which is much less noisy than either score).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import classifier

SEEDS = (0, 1, 2)
EPOCHS = 12
MAX_TRAIN = 2048  # synthetic images a candidate is scored with (a seeded, class-balanced subset)
# Training steps at least, for a set whose epochs are few batches: EPOCHS steps of a small set
# leave the CNN answering the most common class (gap-report's sets: a real half, a split part).
MIN_STEPS = EPOCHS * (512 // classifier.BATCH)
BOOTSTRAP = 2000
LEVEL = 0.90  # two-sided interval; "beyond noise" means the paired interval's low end is above 0


@dataclass(frozen=True)
class Downstream:
    """Accuracy on the labelled real test images of a CNN trained on one candidate's images."""

    accuracy: float  # mean over seeds
    low: float  # LEVEL bootstrap interval over test images
    high: float
    per_seed: tuple[float, ...]
    test_images: int
    # (n_test,) fraction of seeds that classified each test image correctly (for paired tests)
    correct: np.ndarray = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "accuracy": round(self.accuracy, 4),
            "interval": [round(self.low, 4), round(self.high, 4)],
            "per_seed": [round(a, 4) for a in self.per_seed],
            "test_images": self.test_images,
        }


def subset(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Indices of at most `limit` images, drawn round-robin over the classes (seeded)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    rng = np.random.default_rng([seed, 29])
    pools = [list(rng.permutation(np.flatnonzero(labels == c))) for c in np.unique(labels)]
    picked: list[int] = []
    while len(picked) < limit:
        for pool in pools:
            if pool and len(picked) < limit:
                picked.append(int(pool.pop()))
    return np.sort(np.array(picked, np.int64))


def score_training_set(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    classes: int | None = None,
    seeds: tuple[int, ...] | None = None,
    epochs: int | None = None,
    standardised: bool = True,
) -> Downstream:
    """Train a CNN per seed on (train_x, train_y), float NHWC in [0, 1] and int labels; test on
    (test_x, test_y). Seeds and epochs default to SEEDS and EPOCHS as they are at call time.
    standardised=False feeds the [0, 1] pixels as they are (for comparisons only)."""
    seeds = SEEDS if seeds is None else seeds
    epochs = EPOCHS if epochs is None else epochs
    train_y = np.asarray(train_y, np.int64)
    test_y = np.asarray(test_y, np.int64)
    n_classes = classes or int(max(train_y.max(), test_y.max())) + 1
    tx, ex = classifier.prepare(train_x), classifier.prepare(test_x)
    if standardised:
        tx, ex = standardise(tx, ex)
    hits = np.stack(
        [
            classifier.train_and_predict(tx, train_y, ex, n_classes, seed, epochs) == test_y
            for seed in seeds
        ]
    ).astype(np.float64)
    correct = hits.mean(axis=0)
    low, high = _interval(correct[None, :], seed=0)
    return Downstream(
        float(correct.mean()),
        low,
        high,
        tuple(float(a) for a in hits.mean(axis=1)),
        len(test_y),
        correct,
    )


def epochs_for(count: int, min_steps: int | None = None) -> int:
    """EPOCHS, or more where an epoch of `count` images is too few steps to reach min_steps
    (default MIN_STEPS, as they are at call time)."""
    min_steps = MIN_STEPS if min_steps is None else min_steps
    per_epoch = max(count // min(classifier.BATCH, count), 1)
    return max(EPOCHS, -(-min_steps // per_epoch))


def standardise(train_x: np.ndarray, test_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets minus the training set's per-channel mean, over its per-channel standard
    deviation (a constant channel is only centred)."""
    mean = train_x.mean(axis=(0, 1, 2), dtype=np.float64)
    spread = train_x.std(axis=(0, 1, 2), dtype=np.float64)
    spread = np.where(spread > 1e-6, spread, 1.0)
    return (
        ((train_x - mean) / spread).astype(np.float32),
        ((test_x - mean) / spread).astype(np.float32),
    )


def _interval(rows: np.ndarray, seed: int) -> tuple[float, float]:
    """LEVEL bootstrap interval of rows.sum(0).mean() over resampled test images."""
    values = rows.sum(axis=0)
    rng = np.random.default_rng([seed, 31])
    draws = rng.integers(0, len(values), size=(BOOTSTRAP, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1.0 - LEVEL) / 2.0
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def better_than(candidate: Downstream, baseline: Downstream) -> tuple[float, float, float]:
    """(difference, low, high): candidate minus baseline accuracy with its paired LEVEL interval
    over the same test images. low > 0: the candidate is better beyond noise."""
    if candidate.test_images != baseline.test_images:
        raise ValueError("candidates must be scored on the same test images")
    rows = np.stack([candidate.correct, -baseline.correct])
    low, high = _interval(rows, seed=1)
    return candidate.accuracy - baseline.accuracy, low, high
