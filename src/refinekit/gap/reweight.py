"""Importance weights that give the synthetic set the real set's content mix, not its look.

A domain classifier estimates w(x) = p(real | x) / p(syn | x) for every synthetic image; the
synthetic set weighted (or resampled) by w has the real set's distribution of whatever the
classifier sees. So what it sees decides what is matched, and it must be blind to appearance
(refinement's job), or the weights would favour synthetic images that happen to look like the
real camera rather than show what real images show:

- "classes", when both sets have class folders (io/classes.py): the class of each image. The
  logistic regression on one-hot classes has a closed form, w_c = real share of c / synthetic
  share of c, so the weighted class shares equal the real ones exactly (up to the clip);
  synthetic classes the real set lacks get weight 0.
- "content", otherwise: each image in gray, shrunk to FEATURE_SIDE x FEATURE_SIDE with an
  antialiased filter (a blur many pixels wide: grain, sharpness and texture are gone), its
  cells replaced by their ranks within the image (brightness, contrast, gamma and colour are
  gone, and so is the noise level, which a per-image standard deviation would still carry):
  where the bright and dark things are, not how they look. An L2-regularised logistic regression (NumPy, Newton's method; both sets weighted
  equally, so the odds are the density ratio), the L2 strength chosen by cross-validated log
  loss from L2_GRID (no signal: the strongest, weights near 1), and every synthetic weight from
  a model fitted without its fold (FOLDS), so an image's own noise does not weight it. Known
  limit: appearance that survives the blur (a strong vignette, large-scale shading) is still
  seen.

Weights are normalised to mean 1, clipped to [1/CLIP, CLIP] (a few images must not stand for
the whole set) and normalised again. NumPy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError
from ..io.resize import resize_matrix

FEATURE_SIDE = 8
FOLDS = 5
L2_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
NEWTON_STEPS = 50
CLIP = 10.0
MIN_IMAGES = 4  # per set; content weights need a few per fold
METHODS = ("auto", "classes", "content")
DESCRIPTIONS = {
    "classes": "class shares: w = real share / synthetic share of the image's class folder",
    "content": (
        f"logistic regression on content features (gray, shrunk to {FEATURE_SIDE}x"
        f"{FEATURE_SIDE} antialiased, each cell's rank in its image), L2 chosen by {FOLDS}-fold "
        "cross-validation, weights cross-fitted"
    ),
}


@dataclass(frozen=True)
class Weights:
    """Per synthetic image weights (mean 1) and how they were made."""

    weights: np.ndarray  # (n_synthetic,) float64, mean 1; 0 for classes the real set lacks
    method: str  # "classes" | "content"
    clipped: int  # weights that hit the clip
    classes: dict | None = None  # shares per class (method "classes")
    classifier: dict | None = field(default=None)  # L2 and held-out accuracy (method "content")

    @property
    def effective_sample_size(self) -> float:
        """(sum w)^2 / sum w^2: how many unweighted images the weighted set is worth."""
        w = self.weights
        return float(w.sum() ** 2 / max(float((w**2).sum()), 1e-12))

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "description": DESCRIPTIONS[self.method],
            "clip": [round(1.0 / CLIP, 6), CLIP],
            "clipped": self.clipped,
            "effective_sample_size": round(self.effective_sample_size, 2),
            "classes": self.classes,
            "classifier": self.classifier,
        }


def choose_method(
    by: str, synthetic_classes: Sequence[str] | None, real_classes: Sequence[str] | None
) -> str:
    """The method `by` names ("auto": classes when both sets have shared class folders)."""
    if by not in METHODS:
        raise DataError(f"--by {by}: must be one of {', '.join(METHODS)}")
    shared = _shared(synthetic_classes, real_classes)
    if by == "classes" and len(shared) < 2:
        raise DataError(
            "--by classes needs class folders (top-level subfolders, at least two) in both sets "
            f"with at least two names in common; found {len(shared)} shared"
        )
    if by == "auto":
        return "classes" if len(shared) >= 2 else "content"
    return by


def fit_weights(
    synthetic: np.ndarray,
    real: np.ndarray,
    synthetic_classes: Sequence[str] | None = None,
    real_classes: Sequence[str] | None = None,
    *,
    by: str = "auto",
    seed: int = 0,
) -> Weights:
    """Weights for the synthetic images (float [0, 1] NHWC, any size and channel count per set)
    that give them the real images' content mix. *_classes: each image's class folder, or None.
    """
    method = choose_method(by, synthetic_classes, real_classes)
    for name, images in (("synthetic", synthetic), ("real", real)):
        if len(images) < MIN_IMAGES:
            raise DataError(f"{name}: {len(images)} images; weights need at least {MIN_IMAGES}")
    if method == "classes":
        assert synthetic_classes is not None and real_classes is not None
        raw, classes = _class_ratio(synthetic_classes, real_classes)
        weights, clipped = normalise(raw)
        classes["weighted_share"] = shares(synthetic_classes, weights, classes["names"])
        return Weights(weights, method, clipped, classes=classes)
    logits, info = content_logits(content_features(synthetic), content_features(real), seed)
    weights, clipped = normalise(np.exp(np.clip(logits, -30.0, 30.0)))
    return Weights(weights, method, clipped, classifier=info)


def normalise(raw: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean 1, clipped to [1/CLIP, CLIP] (zeros stay zero), mean 1 again; and how many clipped."""
    w = np.asarray(raw, np.float64)
    if not (w > 0).any():
        raise DataError("every weight is 0: the real set shares no class with the synthetic one")
    w = w / w.mean()
    positive = w > 0
    clipped = int(((w < 1.0 / CLIP) & positive).sum() + (w > CLIP).sum())
    w = np.where(positive, np.clip(w, 1.0 / CLIP, CLIP), 0.0)
    return w / w.mean(), clipped


def _shared(a: Sequence[str] | None, b: Sequence[str] | None) -> list[str]:
    if a is None or b is None:
        return []
    return sorted(set(a) & set(b))


def shares(labels: Sequence[str], weights: np.ndarray | None, names: Sequence[str]) -> dict:
    """{class: weighted share} over `names` (unweighted with weights None), rounded."""
    array = np.asarray(labels)
    w = np.ones(len(array)) if weights is None else np.asarray(weights, np.float64)
    inside = np.isin(array, list(names))
    total = max(float(w[inside].sum()), 1e-12)
    return {c: round(float(w[array == c].sum()) / total, 6) for c in names}


def _class_ratio(syn: Sequence[str], real: Sequence[str]) -> tuple[np.ndarray, dict]:
    names = _shared(syn, real)
    real_share = shares(real, None, names)
    syn_share = shares(syn, None, names)
    raw = np.array([real_share[c] / syn_share[c] if c in real_share else 0.0 for c in syn])
    return raw, {
        "names": names,
        "real_share": real_share,
        "synthetic_share": syn_share,
        "only_in_synthetic": sorted(set(syn) - set(real)),  # weight 0
        "only_in_real": sorted(set(real) - set(syn)),  # no synthetic image can stand for them
    }


def content_features(images: np.ndarray) -> np.ndarray:
    """(n, FEATURE_SIDE**2): gray, shrunk (antialiased), each cell's rank within its image
    scaled to [-1, 1]."""
    x = np.asarray(images, np.float32)
    if x.ndim == 3:
        x = x[..., None]
    gray = x.mean(axis=-1)
    _, height, width = gray.shape
    rows = resize_matrix(height, FEATURE_SIDE)
    cols = resize_matrix(width, FEATURE_SIDE)
    small = np.einsum("ih,nhw,jw->nij", rows, gray, cols, optimize=True).reshape(len(x), -1)
    ranks = small.argsort(axis=1, kind="stable").argsort(axis=1, kind="stable")
    return ranks.astype(np.float64) / max(small.shape[1] - 1, 1) * 2.0 - 1.0


def _folds(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(n) % k


def content_logits(syn: np.ndarray, real: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """Cross-fitted log density ratios log p(x|real)/p(x|syn) for the synthetic rows, and the
    classifier's description (the chosen L2, the held-out balanced accuracy)."""
    k = int(min(FOLDS, len(syn), len(real)))
    rng = np.random.default_rng([seed, 41])
    fold_s, fold_r = _folds(len(syn), k, rng), _folds(len(real), k, rng)
    x = np.concatenate([syn, real])
    mean, std = x.mean(axis=0), np.maximum(x.std(axis=0), 1e-6)
    x = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)
    y = np.r_[np.zeros(len(syn)), np.ones(len(real))]
    folds = np.r_[fold_s, fold_r]
    # Each set weighs one half: the fitted odds are then the density ratio.
    sample = np.r_[np.full(len(syn), 0.5 / len(syn)), np.full(len(real), 0.5 / len(real))]
    held = {}
    for l2 in L2_GRID:
        logits = np.empty(len(x))
        for f in range(k):
            train = folds != f
            beta = fit_logistic(x[train], y[train], sample[train] / sample[train].sum(), l2)
            logits[~train] = x[~train] @ beta
        held[l2] = logits
    losses = {l2: _log_loss(z, y, sample) for l2, z in held.items()}
    best = min(L2_GRID, key=lambda l2: (round(losses[l2], 9), -l2))  # ties: the strongest
    logits = held[best]
    accuracy = 0.5 * (np.mean(logits[: len(syn)] < 0) + np.mean(logits[len(syn) :] > 0))
    info = {
        "l2": best,
        "folds": k,
        "held_out_log_loss": round(losses[best], 6),
        "held_out_balanced_accuracy": round(float(accuracy), 4),
    }
    return logits[: len(syn)], info


def fit_logistic(x: np.ndarray, y: np.ndarray, sample: np.ndarray, l2: float) -> np.ndarray:
    """Coefficients minimising sum(sample * log loss) + l2/2 |beta|^2 (the last column, the
    intercept, unpenalised) by Newton's method; x (n, d) with the intercept column."""
    d = x.shape[1]
    penalty = np.full(d, l2)
    penalty[-1] = 1e-9
    beta = np.zeros(d)
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(x @ beta)
        grad = x.T @ (sample * (p - y)) + penalty * beta
        hess = (x * (sample * p * (1.0 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


def _log_loss(z: np.ndarray, y: np.ndarray, sample: np.ndarray) -> float:
    """Weighted mean log loss of logits z (log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0)."""
    signed = np.where(y > 0, z, -z)
    return float((sample * np.logaddexp(0.0, -signed)).sum() / sample.sum())


def resample(weights: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` indices drawn with probability proportional to `weights` by systematic
    resampling (evenly spaced draws from one random offset) over a seeded shuffle of the
    images: image i appears floor or ceil of count * w_i / sum(w) times, so a uniform
    weighting repeats no image while count <= n; the shuffle keeps a periodic order (classes
    alternating) from biasing which images get the extra draws. Sorted, int64."""
    w = np.asarray(weights, np.float64)
    rng = np.random.default_rng([seed, 43])
    order = rng.permutation(len(w))
    cumulative = np.cumsum(w[order] / w.sum())
    points = (rng.random() + np.arange(count)) / count
    picks = np.minimum(np.searchsorted(cumulative, points, side="right"), len(w) - 1)
    return np.sort(order[picks]).astype(np.int64)
