"""The validation split and checkpoint scores (docs/training.md).

A fraction of the real set (at least MIN_IMAGES, at most half of it) and as many synthetic
images (spread over the classes when the synthetic set has class subfolders) are held out of
training. The split is drawn from the seed and recorded in RUN/validation.json, so a resumed
run trains on exactly the same images. At every checkpoint the refiner's moving average
refines the held-out synthetic images and `refinekit.gap.scores` scores them against the
held-out real ones: the headline distance (lower is better) and, with classes, label retention.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..io.atomic import atomic_write

MIN_IMAGES = 16
MIN_PER_CLASS = 2  # labelled real images held out per class for the downstream score
MAX_SYNTHETIC = 512  # scoring cost grows with it; enough for a stable distance and retention
FILE = "validation.json"


@dataclass(frozen=True)
class Split:
    real: np.ndarray  # int64 indices of held-out real images (into the loaded real set)
    synthetic: np.ndarray  # int64 indices of held-out synthetic images

    @property
    def empty(self) -> bool:
        return len(self.real) == 0


def held_out_count(total: int, fraction: float) -> int:
    """Images held out of `total`: fraction of it, at least MIN_IMAGES, at most half; 0 if off
    or when `total` is under 2 x MIN_IMAGES."""
    # Fewer than 2 x MIN_IMAGES real images: holding 16 out would starve training, and fewer
    # than 16 cannot be scored (gap.scores needs two halves of 8), so there is no validation.
    if fraction <= 0 or total < 2 * MIN_IMAGES:
        return 0
    return min(max(round(fraction * total), MIN_IMAGES), total // 2)


def labelled_count(total: int, classes: int, fraction: float) -> int:
    """Held-out images of a real set in class folders: as held_out_count, but a small set
    still gives up MIN_PER_CLASS per class (at most a third of it) to test a classifier on."""
    if fraction <= 0:
        return 0
    return max(held_out_count(total, fraction), min(MIN_PER_CLASS * classes, total // 3))


def draw_split(
    n_real: int,
    n_synthetic: int,
    synthetic_labels: np.ndarray | None,
    fraction: float,
    seed: int,
    real_labels: np.ndarray | None = None,
) -> Split:
    """A seeded split; synthetic indices round-robin over classes (labels -1: no classes), and
    real ones too when `real_labels` gives every real image a class."""
    rng = np.random.default_rng([seed, 13])
    labelled = (
        real_labels is not None and (real_labels >= 0).all() and len(np.unique(real_labels)) >= 2
    )
    if labelled:
        assert real_labels is not None
        n_val = labelled_count(n_real, len(np.unique(real_labels)), fraction)
    else:
        n_val = held_out_count(n_real, fraction)
    if n_val == 0:
        return Split(np.zeros(0, np.int64), np.zeros(0, np.int64))
    order = rng.permutation(n_real)
    if labelled:
        assert real_labels is not None
        real = np.sort(
            _round_robin(
                [[int(i) for i in order if real_labels[i] == c] for c in np.unique(real_labels)],
                n_val,
            )
        )
    else:
        real = np.sort(order[:n_val])
    n_syn = min(
        max(n_val, MIN_IMAGES if labelled else 0, round(fraction * n_synthetic)),
        MAX_SYNTHETIC,
        n_synthetic // 2,
    )
    if n_syn < 4:  # too few synthetic images to spare: no validation
        return Split(np.zeros(0, np.int64), np.zeros(0, np.int64))
    labels = synthetic_labels if synthetic_labels is not None else np.full(n_synthetic, -1)
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in np.unique(labels)]
    return Split(real, np.sort(_round_robin(pools, n_syn)))


def _round_robin(pools: list[list[int]], count: int) -> np.ndarray:
    """`count` indices taken from the pools in turn, each pool from its end."""
    picked: list[int] = []
    while len(picked) < count and any(pools):
        for pool in pools:
            if pool and len(picked) < count:
                picked.append(pool.pop())
    return np.array(picked, np.int64)


def load_or_draw(
    run: Path,
    n_real: int,
    n_synthetic: int,
    labels: np.ndarray | None,
    fraction: float,
    seed: int,
    write: bool = True,
    real_labels: np.ndarray | None = None,
) -> Split:
    """The split recorded in RUN/validation.json, or a new one (written there when `write`:
    of several processes only the first writes; the others draw the same split)."""
    path = Path(run) / FILE
    if path.exists():
        try:
            saved = json.loads(path.read_text())
            split = Split(np.array(saved["real"], np.int64), np.array(saved["synthetic"], np.int64))
            counts = (saved["real_images"], saved["synthetic_images"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: unreadable ({exc}); restore it or use a new --out") from exc
        if counts != (n_real, n_synthetic):
            raise ConfigError(
                f"{path}: the split was drawn from {counts[0]} real and {counts[1]} synthetic "
                f"images, the folders now hold {n_real} and {n_synthetic}; restore the data or "
                "use a new --out"
            )
        return split
    split = draw_split(n_real, n_synthetic, labels, fraction, seed, real_labels)
    record = {
        "real_images": n_real,
        "synthetic_images": n_synthetic,
        "fraction": fraction,
        "real": split.real.tolist(),
        "synthetic": split.synthetic.tolist(),
    }
    if write:
        atomic_write(path, (json.dumps(record) + "\n").encode())
    return split


def remaining(total: int, held: np.ndarray) -> np.ndarray:
    """Indices of the images left for training."""
    keep = np.ones(total, bool)
    keep[held] = False
    return np.flatnonzero(keep)


def score(
    real: np.ndarray,
    synthetic: np.ndarray,
    refined: np.ndarray,
    labels,
    seed: int,
    photometric: bool = False,
) -> dict:
    """Scores of one checkpoint. Images float32 NHWC in [0, 1]; labels int (N,) or None.

    photometric: label retention's classifiers also train on photometric variants of the
    synthetic images (gap.scores.label_retention), for refiners that change the look only."""
    from ..gap.scores import headline_distance

    # gap.scores compares two halves of at least 8 real images; a smaller labelled split is
    # there for the downstream score alone.
    distance = headline_distance(real, refined, seed=seed) if len(real) >= MIN_IMAGES else None
    out = {"distance": distance, "retention": None}
    out["retention"] = retention(synthetic, refined, labels, seed, photometric)
    return out


def readable(unrefined: float, classes: int) -> bool:
    """Whether retention says anything: the retention classifier must read the unrefined
    held-out images closer to perfectly than to chance. Below that most of what it counts as
    a changed class are its own mistakes (on 10 classes of shapes in random colours it read
    21% of the unrefined images right, and every checkpoint's retention was 0.10-0.14)."""
    chance = 1.0 / max(classes, 1)
    return unrefined >= chance + (1.0 - chance) / 2.0


def retention(
    synthetic: np.ndarray, refined: np.ndarray, labels, seed: int, photometric: bool = False
) -> float | None:
    """Label retention of `refined` (gap.scores.label_retention), None when it cannot be
    scored: no labels, one class, or too few images."""
    from ..gap.scores import label_retention

    # Cross-fitted retention classifiers need a few images per fold (a tiny labelled split
    # held out for the downstream score alone has too few).
    enough = len(synthetic) >= MIN_IMAGES
    if not (enough and labels is not None and (labels >= 0).all() and len(np.unique(labels)) >= 2):
        return None
    if photometric:
        return label_retention(synthetic, labels, refined, seed=seed, photometric=True)
    return label_retention(synthetic, labels, refined, seed=seed)
