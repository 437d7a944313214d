"""TEMPORARY stand-in for the gap-report helper's `refinekit.gap.scores` (replaced at merge).

Only the two signatures matter to callers (training/validation.py):
- headline_distance(real, images, *, seed=0) -> float: KID between random-net features of
  `images` and `real` (float32 NHWC in [0, 1]), standardised with the real set's statistics;
  lower is better.
- label_retention(synthetic, labels, refined, *, seed=0) -> float: the fraction of `refined`
  images that a classifier trained on `synthetic` (with `labels`) assigns to their own label.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from . import classifier, features, kid


def headline_distance(real: np.ndarray, images: np.ndarray, *, seed: int = 0) -> float:
    del seed  # the plain U-statistic needs no resampling
    ref = features.extract_features(np.asarray(real, np.float32))
    other = features.extract_features(np.asarray(images, np.float32))
    mean, std = features.standardiser(ref)
    return float(kid.kid((other - mean) / std, (ref - mean) / std)[0])


def _standardise(images: np.ndarray) -> np.ndarray:
    """Per-image zero mean, unit spread: retention should not hinge on overall brightness."""
    x = np.asarray(images, np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    return classifier.classifier_inputs((x - mean) / np.maximum(std, 1e-3))


@lru_cache(maxsize=4)
def _trained(digest: str, seed: int, classes: int, data: tuple) -> classifier.Trained:
    images, labels = data[0], data[1]
    return classifier.train(images, labels, classes, seed, stream=11)


class _Hashable(tuple):
    """A (images, labels) pair that the cache compares by its digest only."""

    def __hash__(self) -> int:
        return 0

    def __eq__(self, other) -> bool:
        return True


def label_retention(
    synthetic: np.ndarray, labels: np.ndarray, refined: np.ndarray, *, seed: int = 0
) -> float:
    labels = np.asarray(labels, np.int64)
    x = _standardise(synthetic)
    digest = hashlib.sha256(x.tobytes() + labels.tobytes()).hexdigest()
    classes = int(labels.max()) + 1
    model = _trained(digest, seed, classes, _Hashable((x, labels)))
    predicted = classifier.logits(model, _standardise(refined)).argmax(axis=1)
    return float((predicted == labels).mean())
