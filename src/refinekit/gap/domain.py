"""Statistics of a two-sample classifier test from held-out scores: accuracy, AUC, proxy
A-distance and a p-value. No JAX here; the classifier itself is in classifier.py.

Scores are held-out logit differences, positive meaning "the other set", negative "real".
Accuracy is balanced (the mean of the two per-class accuracies), so 0.5 is chance whatever the
set sizes. The p-value is the one-sided exact binomial test of the number of correct held-out
predictions against chance (p = 0.5): small means the classifier tells the sets apart. It
conditions on the trained classifiers (held-out predictions are independent given them).
"""

from __future__ import annotations

import math

import numpy as np


def correct_fraction(scores: np.ndarray, positive: bool) -> np.ndarray:
    """1 for a correct prediction, 0 wrong, 0.5 for a score of exactly 0 (a tie)."""
    right = scores > 0 if positive else scores < 0
    return np.where(scores == 0, 0.5, right.astype(np.float64))


def balanced_accuracy(
    scores_pos: np.ndarray, scores_neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray
) -> np.ndarray:
    """Mean of per-class accuracies per replicate of weights (R, p), (R, q) -> (R,)."""
    w_pos, w_neg = w_pos.astype(np.float64), w_neg.astype(np.float64)
    acc_pos = w_pos @ correct_fraction(scores_pos, True) / w_pos.sum(axis=1)
    acc_neg = w_neg @ correct_fraction(scores_neg, False) / w_neg.sum(axis=1)
    return (acc_pos + acc_neg) / 2


def weighted_auc(
    scores_pos: np.ndarray, scores_neg: np.ndarray, w_pos: np.ndarray, w_neg: np.ndarray
) -> np.ndarray:
    """Area under the ROC curve (Mann-Whitney, ties count 1/2) per replicate -> (R,)."""
    w_pos, w_neg = w_pos.astype(np.float64), w_neg.astype(np.float64)
    order = np.argsort(scores_neg, kind="stable")
    sorted_neg = scores_neg[order]
    cumulative = np.concatenate(
        [np.zeros((len(w_neg), 1)), np.cumsum(w_neg[:, order], axis=1)], axis=1
    )
    below = np.searchsorted(sorted_neg, scores_pos, side="left")
    through = np.searchsorted(sorted_neg, scores_pos, side="right")
    less = cumulative[:, below]  # (R, p): weight of negatives scored strictly lower
    equal = cumulative[:, through] - less
    wins = (w_pos * (less + 0.5 * equal)).sum(axis=1)
    return wins / (w_pos.sum(axis=1) * w_neg.sum(axis=1))


def proxy_a_distance(accuracy: np.ndarray) -> np.ndarray:
    """2 (1 - 2 error) with error = 1 - accuracy: 0 at chance, 2 when perfectly separable."""
    return 2.0 * (1.0 - 2.0 * (1.0 - accuracy))


def binomial_p_value(correct: int, total: int) -> float:
    """P[X >= correct] for X ~ Binomial(total, 1/2): one-sided, exact."""
    if correct <= 0:
        return 1.0
    if correct > total:
        return 0.0
    log_half = total * math.log(0.5)
    log_terms = [
        math.lgamma(total + 1) - math.lgamma(k + 1) - math.lgamma(total - k + 1) + log_half
        for k in range(correct, total + 1)
    ]
    top = max(log_terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in log_terms))
