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


def _with_domain(values: Computed, refined_accuracy: float) -> Computed:
    for name, value in (("synthetic", 1.0), ("refined", refined_accuracy), ("real_holdout", 0.5)):
        values.put("classifier_accuracy", name, draws(value, 0.005, 7))
    return values


def test_more_real_but_still_separable_says_so_in_the_first_line():
    verdict = decide(summary.summarise(_with_domain(computed((2.0, 0.5), 0.99), 0.99)))
    assert verdict.outcome == "improved"  # the outcome keeps its rule; the first line tempers it
    first = verdict.lines[0]
    assert first.startswith("Refinement made the synthetic images significantly more real")
    assert "but a domain classifier still tells refined from real images apart (99%" in first
    assert verdict.caveats and verdict.as_dict()["caveats"] == verdict.caveats


def test_more_real_but_train_on_refined_flat_says_so_in_the_first_line():
    verdict = decide(summary.summarise(computed((2.0, 0.5), 0.99, (0.7, 0.7, 0.9))))
    assert verdict.outcome == "improved"
    assert "is no better on real ones (70% vs 70% trained on synthetic)" in verdict.lines[0]
    assert "labels were kept" not in verdict.lines[0]  # the caveat comes first


def test_more_real_without_caveats_keeps_the_plain_first_line():
    verdict = decide(summary.summarise(_with_domain(computed((2.0, 0.5), 0.99), 0.55)))
    assert verdict.caveats == [] and ", but" not in verdict.lines[0]
    assert "labels were kept (99% retention)" in verdict.lines[0]


def test_a_gap_closed_that_rounds_to_100_but_stays_above_the_floor_says_so():
    out = Computed()
    out.put("headline", "synthetic", draws(100.0, 0.01, 1))
    out.put("headline", "refined", draws(0.3, 0.01, 2))  # 99.7% closed, but 0.3 above the floor
    out.put("headline", "real_holdout", draws(0.0, 0.01, 3))
    verdict = decide(summary.summarise(out))
    assert "still above the real-vs-real floor" in verdict.lines[0]
    assert "100%" not in verdict.text and "still above the floor" in verdict.lines[1]
    close = Computed()
    close.put("headline", "synthetic", draws(100.0, 0.01, 1))
    close.put("headline", "refined", draws(0.0, 0.01, 2))  # at the floor: really closed
    close.put("headline", "real_holdout", draws(0.0, 0.01, 3))
    assert "still above" not in decide(summary.summarise(close)).text


def test_colour_metrics_do_not_count_on_a_grayscale_set():
    values = computed((2.0, 0.5))
    for name, value in (("synthetic", 0.3), ("refined", 0.1), ("real_holdout", 0.0)):
        v = draws(value, 0.01, 8)
        values.put("intensity_w1", name, v, per_channel=v[:, None])
        values.put("colour", name, draws(value, 0.01, 9))
    rows = summary.summarise(values)
    assert [row.applies for row in rows if row.spec.key == "colour"] == [False]
    assert decide(rows).lines[-1].startswith("2 of 2 metrics improved")  # headline, intensity


def test_one_number_format_and_still_above_the_floor_in_the_table():
    from refinekit.gap import formatting

    assert formatting.estimate({"value": 1.0, "low": 1.0, "high": 1.0}, percent=True) == "100%"
    assert formatting.estimate({"value": 0.5, "low": 0.4, "high": 0.6}) == "0.5 [0.4, 0.6]"
    assert formatting.pct(0.9996) == ">99.9%" and formatting.pct(0.996) == "99.6%"
    metric = {
        "key": "kid",
        "refined": {"value": 0.3, "low": 0.28, "high": 0.32},
        "gap": {"value": 100.0, "low": 99.0, "high": 101.0},
        "gap_closed": {"value": 0.997, "low": 0.996, "high": 0.998},
        "refined_gap": {"value": 0.3, "low": 0.28, "high": 0.32},
        "outcome": "improved",
    }
    assert formatting.gap_closed_cell(metric) == "still above the floor; improved"
    metric["refined_gap"] = {"value": 0.01, "low": -0.02, "high": 0.04}
    assert formatting.gap_closed_cell(metric) == "99.7% [99.6%, 99.8%] improved"
    assert not formatting.applies({"key": "colour"}, channels=1)
    assert formatting.applies({"key": "colour"}, channels=3)
