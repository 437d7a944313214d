"""Independent judges (scikit-learn, evaluation only): an RBF SVM and an MLP on raw pixels.

Two scores:
- label retention: k-fold over the synthetic set; a judge trained on the other folds' synthetic
  images predicts the refined versions of the held-out fold (and, for reference, the held-out
  synthetic images themselves). Retention 1.0 means every refined image still shows its class.
- train on X, test on real: a judge trained on a labelled set X (raw synthetic, refined, oracle,
  real) is scored on the real `val` and `test` splits.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

JUDGES = ("svm", "mlp")


def make_judge(name: str, seed: int = 0):
    if name == "svm":
        return SVC(kernel="rbf", C=10.0, gamma="scale")
    if name == "mlp":
        return MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, max_iter=200, random_state=seed)
    raise ValueError(f"unknown judge {name!r}; expected one of {JUDGES}")


def fit(name: str, x: np.ndarray, y: np.ndarray, seed: int = 0):
    judge = make_judge(name, seed)
    # one BLAS thread: on a shared 2-core machine more threads made the MLP 5-15x slower
    with warnings.catch_warnings(), threadpool_limits(1):
        # max_iter bounds the MLP's time; stopping before convergence is intended
        warnings.simplefilter("ignore", ConvergenceWarning)
        judge.fit(x, y)
    return judge


def predict(judge, x: np.ndarray) -> np.ndarray:
    with threadpool_limits(1):
        return judge.predict(x)


def accuracy(judge, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(predict(judge, x) == y))


def photometric(x: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random appearance changes (gain/offset per channel, blur, noise) of (N, D) images of
    `shape` (H, W, C): trained on these, the retention judge reads the class, not the look."""
    from scipy import ndimage

    n = len(x)
    img = x.reshape(n, *shape)
    c = shape[-1]
    gain = rng.uniform(0.35, 1.2, (n, 1, 1, 1)) * rng.uniform(0.8, 1.2, (n, 1, 1, c))
    offset = rng.uniform(-0.1, 0.45, (n, 1, 1, 1))
    img = img * gain + offset
    sigma = rng.uniform(0.0, 1.4, n)
    img = np.stack(
        [ndimage.gaussian_filter(im, (s, s, 0)) for im, s in zip(img, sigma, strict=True)]
    )
    img = img + rng.normal(0, 1, img.shape) * rng.uniform(0.0, 0.1, (n, 1, 1, 1))
    return np.clip(img, 0, 1).reshape(n, -1).astype(np.float32)


def retention(
    name: str,
    synthetic: np.ndarray,
    refined: np.ndarray,
    y: np.ndarray,
    shape: tuple[int, ...],
    folds: int = 5,
) -> dict:
    """{'refined': fraction of held-out refined images predicted as their class,
    'synthetic': the same for the held-out synthetic images (the judge's own ceiling)}.

    synthetic and refined are aligned (N, D) arrays: row i of refined is R(row i of synthetic).
    The judge trains on each synthetic image and one photometric variant of it, so a refined
    image that only looks more real (contrast, blur, noise) still counts as retained.
    """
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
    hits_ref = hits_syn = 0
    for train_idx, held_idx in splitter.split(synthetic, y):
        rng = np.random.default_rng(len(held_idx))
        x_train = synthetic[train_idx]
        x_train = np.concatenate([x_train, photometric(x_train, shape, rng)])
        judge = fit(name, x_train, np.concatenate([y[train_idx], y[train_idx]]))
        hits_ref += int(np.sum(predict(judge, refined[held_idx]) == y[held_idx]))
        hits_syn += int(np.sum(predict(judge, synthetic[held_idx]) == y[held_idx]))
    return {"refined": hits_ref / len(y), "synthetic": hits_syn / len(y)}


def train_on(name: str, x, y, evals: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Accuracy on each named real split of a judge trained on (x, y)."""
    judge = fit(name, x, y)
    return {split: accuracy(judge, ex, ey) for split, (ex, ey) in evals.items()}
