"""Scores for callers that are not a report (e.g. training, at every checkpoint): the same
headline distance and label retention as `refinekit gap-report`, from arrays.

headline_distance splits `real` into two seeded halves: the first is the reference every set
is compared with, the second the floor that standardises each component (its distance to the
reference and the bootstrap spread of that distance, REPLICATES resamples). So the value is in
the report's units: 0 = as close to real as a disjoint real half; it needs at least 16 real
images, and values are comparable between calls with the same `real`, seed and number of
`images`. Some components (sliced Wasserstein, spectra, histograms) are biased upwards for small
sets, so a set larger than the floor half can score slightly below 0 (measured: about -0.3 to
-0.5 for 300 real photo patches against a floor of 150) and a smaller one above it; compare
checkpoints on sets of one size.
"""

from __future__ import annotations

import numpy as np

from . import bootstrap, compute, features, headline, retention, swd

REPLICATES = 50


def headline_distance(real: np.ndarray, images: np.ndarray, *, seed: int = 0) -> float:
    """Headline distance (lower = closer to real) between float32 [0,1] NHWC image sets of the
    same HxWxC; same definition as gap-report's headline, fast enough for ~100-500 images of
    16x16..64x64 in a few seconds on CPU."""
    real = np.asarray(real, np.float32)
    images = np.asarray(images, np.float32)
    if real.ndim != 4 or images.shape[1:] != real.shape[1:]:
        raise ValueError(f"real {real.shape} and images {images.shape} must be NHWC, same HxWxC")
    # 16 real images: two halves of 8, the smallest validation split training holds out.
    if len(real) < 16 or len(images) < 2:
        raise ValueError("headline_distance needs at least 16 real images and 2 images")
    order = np.random.default_rng([seed, 11]).permutation(len(real))
    half = (len(real) + 1) // 2
    reference, floor = real[np.sort(order[:half])], real[np.sort(order[half:])]
    rng = np.random.default_rng([seed, 17])
    counts_ref = bootstrap.count_matrix(len(reference), REPLICATES, rng)
    counts_floor = bootstrap.count_matrix(len(floor), REPLICATES, rng)
    counts_x = bootstrap.count_matrix(len(images), REPLICATES, rng)  # one shape for all sets
    basis = swd.fit_basis(reference)
    ref = compute.prepare(reference, counts_ref, basis=basis)
    sets = {
        "real_holdout": compute.prepare(floor, counts_floor, basis=basis),
        "images": compute.prepare(images, counts_x, basis=basis),
    }
    mean, std = features.standardiser(np.concatenate([ref.features, sets["real_holdout"].features]))
    compute.standardise([ref, *sets.values()], mean, std)
    out = compute.compute_metrics(
        ref, sets, seed, floor="real_holdout", basis=basis, headline_only=True
    )
    return float(out.values[headline.KEY]["images"][0])


def label_retention(
    synthetic: np.ndarray,
    labels: np.ndarray,
    refined: np.ndarray,
    *,
    seed: int = 0,
    photometric: bool = False,
) -> float:
    """Fraction of refined images (refined[i] is the refinement of synthetic[i]) that a
    classifier trained on the synthetic images (held-out folds / cross-fitting, so no image is
    scored by a classifier that saw it) assigns labels[i]. labels: int array (N,).

    photometric: the classifiers also train on photometric variants of each synthetic image
    (gap/photometric.py), so a change of look (tone, blur, noise, bit depth, uneven light) is
    not read as a change of class; what gap-report does. False: synthetic images only."""
    from .classifier import classifier_inputs

    labels = np.asarray(labels)
    if np.asarray(synthetic).shape != np.asarray(refined).shape or len(labels) != len(synthetic):
        raise ValueError("synthetic and refined must have one shape and labels one entry each")
    values, ids = np.unique(labels, return_inverse=True)
    if len(values) < 2:
        raise ValueError("label_retention needs at least two classes")
    synthetic = np.asarray(synthetic, np.float32)
    scores = retention.cross_fit(
        classifier_inputs(synthetic),
        classifier_inputs(np.asarray(refined, np.float32)),
        ids.astype(np.int64),
        len(values),
        seed,
        images=synthetic if photometric else None,
    )
    return float(np.mean(scores.refined.argmax(axis=1) == ids))
