"""The verdict's outcome and first line, from constructed per-replicate metric values.

Each case sets the headline distance of the synthetic, refined and real-floor comparisons,
label retention (refined) with its ceiling (synthetic), and train-on-X accuracy, as bootstrap
replicates drawn around chosen values; `decide` must name the outcome the rules give and say
in plain words what disagrees.
"""

from __future__ import annotations

import numpy as np
import pytest

from refinekit.gap import summary
from refinekit.gap.compute import Computed
from refinekit.gap.verdict import OUTCOMES, decide

R = 200


def draws(value: float, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([[value], value + spread * rng.standard_normal(R)])


def computed(headline, retention=None, train_on_x=None) -> Computed:
    """headline: (synthetic, refined) values, floor 0; retention: refined fraction (ceiling 1);
    train_on_x: (synthetic, refined, real) accuracies."""
    out = Computed()
    syn, ref = headline
    out.put("headline", "synthetic", draws(syn, 0.1, 1))
    out.put("headline", "refined", draws(ref, 0.1, 2))
    out.put("headline", "real_holdout", draws(0.0, 0.1, 3))
    if retention is not None:
        out.put("label_retention", "synthetic", draws(1.0, 0.0, 4))
        kept = draws(retention, 0.01, 5)
        out.put(
            "label_retention",
            "refined",
            kept,
            measurable=True,
            kept=bool(np.percentile(kept[1:], 2.5) > 0.95),
            relative={"value": retention, "low": retention - 0.02, "high": retention + 0.02},
            images=500,
        )
    if train_on_x is not None:
        for name, value in zip(("synthetic", "refined", "real_holdout"), train_on_x, strict=True):
            out.put("train_on_x_accuracy", name, draws(value, 0.01, 6))
    return out


CASES = {
    "improved": (computed((2.0, 0.5), 0.99, (0.7, 0.75, 0.9)), "Refinement made the synthetic"),
    "mixed": (computed((2.0, 0.5), 0.80, (0.7, 0.72, 0.9)), "Looks more real, but 20% of refined"),
    "no significant change": (computed((2.0, 2.0), 0.99), "Refinement made no significant"),
    "worse": (computed((2.0, 3.0), 0.99), "Refinement made the images look significantly less"),
    "no gap": (computed((0.0, 0.0)), "No significant synthetic-to-real gap"),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_each_outcome_from_a_constructed_case(outcome):
    values, first = CASES[outcome]
    verdict = decide(summary.summarise(values))
    assert verdict.outcome == outcome
    assert verdict.lines[0].startswith(first), verdict.lines[0]


def test_more_real_but_train_on_refined_worse_is_mixed_and_says_so():
    verdict = decide(summary.summarise(computed((2.0, 0.5), 0.99, (0.8, 0.6, 0.9))))
    assert verdict.outcome == "mixed"
    assert "trained on refined images does significantly worse" in verdict.lines[0]


def test_no_change_in_realism_but_labels_lost_is_worse():
    verdict = decide(summary.summarise(computed((2.0, 2.0), 0.7)))
    assert verdict.outcome == "worse" and "30% of refined images changed class" in verdict.lines[0]


def test_no_gap_but_labels_lost_is_worse_and_says_both():
    verdict = decide(summary.summarise(computed((0.0, 0.0), 0.8)))
    assert verdict.outcome == "worse"
    assert verdict.lines[0].startswith("No significant synthetic-to-real gap")
    assert "20% of refined images changed class" in verdict.lines[0]


def test_without_a_refined_set_there_is_no_outcome():
    out = Computed()
    out.put("headline", "synthetic", draws(2.0, 0.1, 1))
    out.put("headline", "real_holdout", draws(0.0, 0.1, 3))
    verdict = decide(summary.summarise(out))
    assert verdict.outcome is None and verdict.lines[0].startswith("Synthetic images are")
