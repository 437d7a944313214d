"""Photometric label retention: classifiers trained on the synthetic images and photometric
variants of them read a refined image's class, not its look. A "refiner" that only blurs,
lowers contrast, brightens, adds noise and quantises keeps its labels (and the classifier
trained on the synthetic images alone reads the change of look as a change of class); one
that swaps every image for another class's keeps none; the identity scores the ceiling.
"""

from __future__ import annotations

import numpy as np
import pytest

from refinekit.gap import photometric, retention
from refinekit.gap.scores import label_retention

SIZE = 16
PER_CLASS = 20
CLASSES = ("bar", "cross", "square")


def shapes(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """PER_CLASS images per class: a vertical bar, a cross or a square, bright on dark."""
    rng = np.random.default_rng(seed)
    images = []
    for c in range(len(CLASSES)):
        for _ in range(PER_CLASS):
            image = np.full((SIZE, SIZE), 0.15 + 0.1 * rng.random(), np.float32)
            value = 0.75 + 0.2 * rng.random()
            y, x = rng.integers(6, 10, 2)
            if c == 0:
                image[2:14, x - 2 : x + 2] = value
            elif c == 1:
                image[y - 1 : y + 1, 2:14] = value
                image[2:14, x - 1 : x + 1] = value
            else:
                image[y - 4 : y + 4, x - 4 : x + 4] = value
            images.append(image + rng.normal(0, 0.02, image.shape))
    images = np.clip(np.stack(images), 0, 1)[..., None].astype(np.float32)
    return images, np.repeat(np.arange(len(CLASSES)), PER_CLASS)


def new_look(images: np.ndarray, seed: int) -> np.ndarray:
    """Blur (sigma 1), half the contrast, +0.15 brighter, noise (std 0.05), 16 levels."""
    rng = np.random.default_rng(seed)
    out = photometric.blur(images, np.full(len(images), 1.0, np.float32))
    out = 0.5 + (out - 0.5) * 0.5 + 0.15 + rng.normal(0, 0.05, out.shape)
    return (np.round(np.clip(out, 0, 1) * 15) / 15).astype(np.float32)


@pytest.mark.slow
@pytest.mark.full_classifiers  # what retention's fold classifiers read
def test_a_change_of_look_keeps_the_labels_and_a_change_of_class_does_not():
    synthetic, labels = shapes(0)
    looked = new_look(synthetic, 10)
    ceiling = label_retention(synthetic, labels, synthetic, seed=0, photometric=True)
    kept = label_retention(synthetic, labels, looked, seed=0, photometric=True)
    plain = label_retention(synthetic, labels, looked, seed=0)
    print(f"ceiling {ceiling:.3f}, photometric {kept:.3f}, synthetic only {plain:.3f}")
    assert ceiling >= 0.9  # the shapes are learnable from 40 images per fold
    assert kept >= 0.9 * ceiling
    assert kept >= plain + 0.2  # trained on the synthetic look only, blur and grain read as class
    # Every image replaced by one of the next class: nothing kept.
    swapped = np.array([np.flatnonzero(labels == (c + 1) % 3)[i % PER_CLASS] for i, c in
                        enumerate(labels)])  # fmt: skip
    assert label_retention(synthetic, labels, synthetic[swapped], seed=0, photometric=True) <= 0.2


@pytest.mark.slow
def test_the_identity_scores_the_ceiling_and_the_fold_classifiers_are_cached(monkeypatch):
    from refinekit.gap import classifier

    synthetic, labels = shapes(1)
    inputs = classifier.classifier_inputs(synthetic)
    retention._FOLD_CACHE.clear()
    scores = retention.cross_fit(inputs, inputs, labels, 3, 0, images=synthetic)
    assert np.array_equal(scores.synthetic, scores.refined)
    ceiling = float(np.mean(scores.synthetic.argmax(axis=1) == labels))
    assert label_retention(synthetic, labels, synthetic, seed=0, photometric=True) == ceiling
    # Cached per set and kind: the photometric classifiers are not the synthetic-only ones.
    trainings = []
    original = classifier.train_early_stopping
    monkeypatch.setattr(
        classifier, "train_early_stopping", lambda *a: trainings.append(len(a[0])) or original(*a)
    )
    label_retention(synthetic, labels, synthetic, seed=0, photometric=True)
    assert trainings == []
    label_retention(synthetic, labels, synthetic, seed=0)
    assert trainings == [2 * PER_CLASS] * retention.FOLDS  # each fold: 2 of 3 thirds, no variants


def test_variants_are_seeded_in_range_and_change_the_look():
    images, _ = shapes(2)
    a = photometric.variants(images, np.random.default_rng(5))
    b = photometric.variants(images, np.random.default_rng(5))
    assert a.dtype == np.float32 and a.shape == images.shape and np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 1
    assert np.abs(a - images).mean() > 0.03
    assert retention.steps(60, True) >= retention.steps(60)
