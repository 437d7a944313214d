"""The metrics a report lists: names, which direction is better, and the distance each is
turned into for "gap closed" (a number that is larger the further a set is from real).

Gap closed, (d(S,R) - d(F,R)) / (d(S,R) - d(Ra,Rb)), is unchanged by any increasing affine
map of d, so "higher is better" metrics just flip sign; density, best near 1, uses |1 - density|.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricSpec:
    key: str
    name: str
    better: str  # "lower", "higher" or "near 1"
    distance_text: str  # how the distance used for gap closed is made from the value
    distance: Callable[[np.ndarray], np.ndarray]
    description: str
    bounds: tuple[float, float] = (
        -np.inf,
        np.inf,
    )  # the values it can take; intervals are clipped to them


def _same(v):
    return v


def _negated(v):
    return -v


def _from_one(v):
    return np.abs(1.0 - v)


SPECS = (
    MetricSpec(
        "headline",
        "Headline distance (standardised)",
        "lower",
        "value",
        _same,
        "Mean over KID, sliced Wasserstein, spectrum bands, intensity histograms and colour of "
        "each distance's z-score against its real-vs-real floor: 0 = as close as a disjoint "
        "real set; the number the verdict uses.",
    ),
    MetricSpec(
        "kid",
        "KID (random features)",
        "lower",
        "value",
        _same,
        "Unbiased MMD^2 with the cubic polynomial kernel on random-network features "
        "(zero-mean filters, per-image mean removed); comparable across set sizes.",
    ),
    MetricSpec(
        "swd",
        "Sliced Wasserstein, Laplacian patches",
        "lower",
        "value",
        _same,
        "Multi-scale sliced Wasserstein-1 distance between 7x7 patches of every Laplacian "
        "pyramid level (Karras et al. 2018), in reference standard deviations.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "frechet",
        "Frechet distance (random features)",
        "lower",
        "value",
        _same,
        "Squared Frechet distance between Gaussians fitted to the random-network features; "
        "biased upwards for small sets.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "classifier_accuracy",
        "Domain classifier accuracy",
        "lower",
        "value",
        _same,
        "Held-out balanced accuracy of a small CNN telling the set from real (0.5 = chance).",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "classifier_auc",
        "Domain classifier AUC",
        "lower",
        "value",
        _same,
        "Held-out ROC AUC of the domain classifier (0.5 = chance).",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "proxy_a_distance",
        "Proxy A-distance",
        "lower",
        "value",
        _same,
        "2 (1 - 2 error) of the domain classifier: 0 at chance, 2 when fully separable.",
        bounds=(-2.0, 2.0),
    ),
    MetricSpec(
        "spectrum_low",
        "Power spectrum, low band",
        "lower",
        "value",
        _same,
        "Mean |log10 power difference| of the radially averaged spectra, frequencies up to "
        "1/3 of Nyquist.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "spectrum_mid",
        "Power spectrum, mid band",
        "lower",
        "value",
        _same,
        "As above, 1/3 to 2/3 of Nyquist.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "spectrum_high",
        "Power spectrum, high band",
        "lower",
        "value",
        _same,
        "As above, 2/3 of Nyquist and up: where refiner artifacts (checkerboards, noise) show.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "spectrum_orientation",
        "Power spectrum by orientation",
        "lower",
        "value",
        _same,
        "Mean |log10 power difference| over 3 bands x 8 orientation sectors of the 2-D power "
        "spectrum: rotation, swirl, motion blur, directional artifacts.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "intensity_w1",
        "Intensity histogram W1",
        "lower",
        "value",
        _same,
        "Wasserstein-1 distance between per-channel intensity histograms, mean over channels "
        "(intensities in [0, 1]).",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "mean_shift",
        "Mean intensity shift",
        "lower",
        "value",
        _same,
        "|mean(set) - mean(real)| per channel, averaged over channels.",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "std_shift",
        "Intensity std shift",
        "lower",
        "value",
        _same,
        "|std(set) - std(real)| of pixel intensities per channel, averaged over channels.",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "colour",
        "Colour distribution W2^2",
        "lower",
        "value",
        _same,
        "Squared 2-Wasserstein distance between Gaussians fitted to the pixel colours "
        "(mean and channel covariance): white balance, saturation, colour casts.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "density",
        "Density (k=5)",
        "near 1",
        "|1 - value|",
        _from_one,
        "Naeem et al. density on random features: about 1 when the set matches real, "
        "above 1 when it crowds into dense real regions.",
        bounds=(0.0, np.inf),
    ),
    MetricSpec(
        "coverage",
        "Coverage (k=5)",
        "higher",
        "-value",
        _negated,
        "Naeem et al. coverage: fraction of real neighbourhoods holding a sample; drops when "
        "diversity collapses.",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "label_retention",
        "Label retention",
        "higher",
        "-value",
        _negated,
        "Fraction of refined images that a classifier cross-fitted on the synthetic class "
        "subfolders assigns their synthetic original's class (the synthetic column: its "
        "accuracy on held-out synthetic images, the ceiling).",
        bounds=(0.0, 1.0),
    ),
    MetricSpec(
        "train_on_x_accuracy",
        "Train on X, test on real: accuracy",
        "higher",
        "-value",
        _negated,
        "Accuracy on the real reference half of the small CNN trained on the set's class "
        "subfolders (the real row trains on the other real half: the ceiling).",
        bounds=(0.0, 1.0),
    ),
)

BY_KEY = {spec.key: spec for spec in SPECS}
