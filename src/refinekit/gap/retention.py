"""Label retention: does a refined image still show the class of its synthetic original?

The synthetic set's class subfolders are its labels. A classifier (the small CNN of
classifier.py, early stopping) is cross-fitted on the synthetic images: the images are split
into FOLDS folds, and each fold's synthetic images and their refined partners are scored by
the classifier trained on the other folds, so no image is scored by a classifier that saw it
(or saw its original). Retention = the fraction of refined images assigned their synthetic
original's label. The same classifier's accuracy on the held-out synthetic images is the
ceiling (what retention is for an identity refiner); `relative` = retention / ceiling.

Photometric (what gap-report does): each fold's classifier also trains on VARIANTS photometric
variants of each of its synthetic images (photometric.py: tone, gamma, blur, noise, bit depth,
vignette or ramp; an image and its variants on one side of the early-stopping split), so a
refined image that only looks different (another camera, another light) is read by its class,
not taken for a class change. Without them the classifier, which sees the image's high-pass
copy too, reads blur and grain as much as shape. The step budget is capped, so the variants
cost little time.

Bootstrap: refined images are paired with their synthetic originals, so one count vector
resamples both; the classifiers stay fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import classifier, memo, photometric
from .bootstrap import Estimate

KEY = "label_retention"
FOLDS = 3
KEPT = 0.95  # labels count as kept when relative retention's interval lies above this
MEASURABLE = 0.8  # ... and retention is only judged when the ceiling reaches this
VARIANTS = 6  # photometric variants per synthetic image (photometric=True)
SHOWN = 8  # refined images that changed class, most confident first, for the HTML


@dataclass(frozen=True)
class Scores:
    """Held-out class probabilities of every synthetic image and its refined partner."""

    synthetic: np.ndarray  # (n, classes)
    refined: np.ndarray  # (n, classes)


def cross_fit(
    synthetic: np.ndarray,
    refined: np.ndarray,
    labels: np.ndarray,
    classes: int,
    seed: int,
    on_step: Callable[[], None] | None = None,
    *,
    images: np.ndarray | None = None,
) -> Scores:
    """FOLDS-fold cross-fitted probabilities; synthetic/refined are classifier inputs (n, ...).

    images: the synthetic images themselves (float [0, 1] NHWC, synthetic = their classifier
    inputs); given, the classifiers train on them and on VARIANTS photometric variants of each.
    """
    n = len(labels)
    fold_of = np.random.default_rng([seed, 21]).permutation(n) % FOLDS
    probs_s, probs_r = np.empty((n, classes)), np.empty((n, classes))
    models = _fold_models(synthetic, labels, classes, seed, fold_of, on_step, images)
    for fold, model in enumerate(models):
        test = fold_of == fold
        for source, out in ((synthetic, probs_s), (refined, probs_r)):
            logit = classifier.logits(model, source[test])
            logit = logit - logit.max(axis=1, keepdims=True)
            p = np.exp(logit)
            out[test] = p / p.sum(axis=1, keepdims=True)
    return Scores(probs_s, probs_r)


# The fold classifiers depend only on the synthetic images, labels and seed (and, photometric,
# the variants' definition). Training scores the same held-out synthetic images at every
# checkpoint, so the last few sets' models are kept (without a progress callback only: a
# report's progress bar counts the steps it trains).
_FOLD_CACHE: dict[str, list[classifier.Trained]] = {}
_FOLD_CACHE_SIZE = 2


def _fold_models(
    synthetic, labels, classes, seed, fold_of, on_step, images=None
) -> list[classifier.Trained]:
    if images is None:
        key = memo.digest(synthetic, labels, fold_of, salt=(classes, seed))
    else:
        images = np.asarray(images, np.float32)
        salt = (classes, seed, "photometric", photometric.VERSION, VARIANTS)
        key = memo.digest(synthetic, labels, fold_of, images, salt=salt)
    if on_step is None and key in _FOLD_CACHE:
        return _FOLD_CACHE[key]
    if images is None:
        models = [
            classifier.train_early_stopping(
                synthetic[fold_of != fold],
                labels[fold_of != fold],
                classes,
                seed,
                100 + fold,
                on_step,
            )
            for fold in range(FOLDS)
        ]
    else:
        # VARIANTS per image, drawn once for the whole set: an image's variants are the same in
        # every fold that trains on it.
        rng = np.random.default_rng([seed, 23])
        variants = [
            classifier.classifier_inputs(photometric.variants(images, rng)) for _ in range(VARIANTS)
        ]
        both = np.concatenate([synthetic, *variants])
        both_labels = np.tile(labels, 1 + VARIANTS)
        n = len(labels)
        models = []
        for fold in range(FOLDS):
            own = np.flatnonzero(fold_of != fold)
            train = (own[None, :] + n * np.arange(1 + VARIANTS)[:, None]).ravel()
            # An image and its variants stay on one side of the early-stopping split.
            models.append(
                classifier.train_early_stopping(
                    both[train],
                    both_labels[train],
                    classes,
                    seed,
                    100 + fold,
                    on_step,
                    train % n,
                )
            )
    if on_step is None:
        memo.remember(_FOLD_CACHE, key, models, _FOLD_CACHE_SIZE)
    return models


def steps(n: int, photometric: bool = False) -> int:
    """Training steps of cross_fit for n synthetic images (progress totals); photometric: with
    `images` (each image and its variant)."""
    per_fold = [int((np.arange(n) % FOLDS != f).sum()) for f in range(FOLDS)]
    copies = 1 + VARIANTS if photometric else 1
    return sum(classifier.early_steps(m * copies) for m in per_fold)


def fractions(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Count-weighted fraction of 1s per replicate: (R, n) x (n,) -> (R,)."""
    weights = counts.astype(np.float64)
    return weights @ correct.astype(np.float64) / np.maximum(weights.sum(axis=1), 1e-12)


def summarise(
    scores: Scores, labels: np.ndarray, class_names: list[str], counts: np.ndarray
) -> dict:
    """Retention and ceiling per replicate, and what the report shows (plain JSON types).

    Returns {"retention": (R,), "ceiling": (R,), "relative": (R,), "details": {...}}.
    """
    predicted = scores.refined.argmax(axis=1)
    kept = predicted == labels
    retention = fractions(kept, counts)
    ceiling = fractions(scores.synthetic.argmax(axis=1) == labels, counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(ceiling > 0, retention / ceiling, 0.0)
    per_class = {}
    for c, name in enumerate(class_names):
        members = labels == c
        if members.any():
            values = fractions(kept[members], counts[:, members])
            per_class[name] = {
                **Estimate.from_replicates(values).clipped(0, 1).as_dict(),
                "count": int(members.sum()),
            }
    confusion = np.zeros((len(class_names), len(class_names)), np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    confidence = scores.refined[np.arange(len(labels)), predicted]
    changed = np.flatnonzero(~kept)
    changed = changed[np.argsort(-confidence[changed], kind="stable")][:SHOWN]
    ceiling_e = Estimate.from_replicates(ceiling).clipped(0, 1)
    relative_e = Estimate.from_replicates(relative).clipped(0, np.inf)
    details = {
        "per_class": per_class,
        "classes": list(class_names),
        "confusion": confusion.tolist(),  # rows: synthetic label, columns: predicted (refined)
        "ceiling": ceiling_e.as_dict(),
        "relative": relative_e.as_dict(),
        "measurable": bool(ceiling_e.value >= MEASURABLE),
        "kept": bool(ceiling_e.value < MEASURABLE or relative_e.low > KEPT),
        "changed": [
            {
                "index": int(i),
                "label": class_names[labels[i]],
                "predicted": class_names[predicted[i]],
                "probability": float(confidence[i]),
            }
            for i in changed
        ],
        "folds": FOLDS,
        "images": int(len(labels)),
    }
    return {"retention": retention, "ceiling": ceiling, "relative": relative, "details": details}
