"""The downstream score: a small CNN trained on a candidate's images, tested on labelled real
images, and the paired comparison that says whether a candidate beats another beyond noise."""

from __future__ import annotations

import numpy as np
import pytest

from refinekit.downstream import better_than, score_training_set
from refinekit.downstream.score import subset


def _bars(n: int, seed: int, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Class 0: a vertical bar, class 1: a horizontal bar, at random positions, with noise."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 0.2, (n, size, size, 1)).astype(np.float32)
    y = np.arange(n) % 2
    for i in range(n):
        k = rng.integers(2, size - 2)
        if y[i] == 0:
            x[i, :, k - 1 : k + 1, 0] += 0.7
        else:
            x[i, k - 1 : k + 1, :, 0] += 0.7
    return np.clip(x, 0, 1), y


@pytest.fixture(scope="module")
def scored():
    train_x, train_y = _bars(128, 0)
    test_x, test_y = _bars(40, 1)
    good = score_training_set(train_x, train_y, test_x, test_y, seeds=(0, 1), epochs=8)
    swapped = score_training_set(train_x, 1 - train_y, test_x, test_y, seeds=(0, 1), epochs=8)
    return good, swapped


def test_a_training_set_that_teaches_the_task_scores_high_and_one_with_wrong_labels_low(scored):
    good, swapped = scored
    assert good.accuracy >= 0.9
    assert swapped.accuracy <= 0.1
    assert good.low <= good.accuracy <= good.high
    assert len(good.per_seed) == 2 and good.test_images == 40
    assert np.isclose(np.mean(good.per_seed), good.accuracy)


def test_the_paired_comparison_sees_a_real_difference_and_none_between_equals(scored):
    good, swapped = scored
    diff, low, high = better_than(good, swapped)
    assert np.isclose(diff, good.accuracy - swapped.accuracy)
    assert low > 0.5 and low <= diff <= high
    diff, low, high = better_than(good, good)
    assert diff == 0.0 and low == 0.0 and high == 0.0


def test_the_interval_is_a_bootstrap_over_test_images():
    from refinekit.downstream.score import _interval

    assert _interval(np.ones((1, 30)), seed=0) == (1.0, 1.0)
    values = np.r_[np.ones(15), np.zeros(15)]
    low, high = _interval(values[None, :], seed=0)
    se = np.sqrt(0.25 / 30)  # binomial standard error at p = 0.5
    assert low < 0.5 < high
    assert abs((high - low) - 2 * 1.645 * se) < 0.06


def test_the_scored_subset_is_class_balanced_and_seeded():
    labels = np.r_[np.zeros(90, int), np.ones(10, int)]
    picked = subset(labels, 20, seed=3)
    assert len(picked) == 20 and len(set(picked)) == 20
    assert np.bincount(labels[picked]).tolist() == [10, 10]
    assert np.array_equal(picked, subset(labels, 20, seed=3))
    assert np.array_equal(subset(labels, 500, seed=3), np.arange(100))


def test_inputs_are_standardised_by_the_training_sets_channel_statistics():
    from refinekit.downstream.score import standardise

    rng = np.random.default_rng(3)
    train = rng.uniform(0.2, 0.6, (20, 4, 4, 3)).astype(np.float32)
    train[..., 2] = 0.5  # a constant channel is only centred
    test = rng.uniform(0.0, 1.0, (5, 4, 4, 3)).astype(np.float32)
    tx, ex = standardise(train, test)
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    np.testing.assert_allclose(tx[..., :2].mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(tx[..., :2].std(axis=(0, 1, 2)), 1.0, atol=1e-5)
    np.testing.assert_allclose(ex[..., :2], (test[..., :2] - mean[:2]) / std[:2], atol=1e-4)
    np.testing.assert_allclose(ex[..., 2], test[..., 2] - 0.5, atol=1e-6)


def test_a_candidate_that_only_rescales_contrast_scores_as_its_source():
    """A per-channel gain and offset applied to the training images and the test images alike
    is undone by standardisation: the CNN sees the same numbers (to float rounding)."""
    train_x, train_y = _bars(64, 0)
    test_x, test_y = _bars(20, 1)
    plain = score_training_set(train_x, train_y, test_x, test_y, seeds=(0,), epochs=3)
    dim = score_training_set(
        0.3 * train_x + 0.4, train_y, 0.3 * test_x + 0.4, test_y, seeds=(0,), epochs=3
    )
    assert plain.per_seed == dim.per_seed
    np.testing.assert_array_equal(plain.correct, dim.correct)


def test_gap_reports_train_on_x_is_this_score_with_the_reports_bootstrap():
    """gap-report's train-on-X row uses the judge train chooses with: its point estimate is
    score_training_set's accuracy, each replicate the count-weighted mean of the same per-image
    hits; a set with swapped labels scores low. A quarter of the test labels are wrong, so the
    per-image hits (and the replicates) vary."""
    from refinekit.downstream import score
    from refinekit.gap import bootstrap, compute
    from refinekit.gap.compute import Computed

    train_x, train_y = _bars(96, 0)
    test_x, test_y = _bars(40, 1)
    test_y[:10] = 1 - test_y[:10]
    counts = bootstrap.count_matrix(40, 20, np.random.default_rng(0))
    ref = compute.prepare(test_x, counts, test_y)
    sets = {
        "synthetic": compute.prepare(train_x, np.ones((21, 96)), train_y),
        "swapped": compute.prepare(train_x, np.ones((21, 96)), 1 - train_y),
    }
    out = Computed()
    compute._train_on_x(ref, sets, seed=0, classes=2, out=out, stage=compute._NO_STAGES)
    got = out.values["train_on_x_accuracy"]
    epochs = score.epochs_for(96)
    direct = score_training_set(train_x, train_y, test_x, test_y, classes=2, epochs=epochs)
    assert got["synthetic"][0] == pytest.approx(direct.accuracy)
    expected = counts @ direct.correct / counts.sum(axis=1)
    np.testing.assert_allclose(got["synthetic"], expected)
    assert np.ptp(got["synthetic"]) > 0
    assert got["synthetic"][0] >= 0.65 and got["swapped"][0] <= 0.35
    assert out.details["train_on_x_accuracy"]["synthetic"] == {"trained_on": 96, "tested_on": 40}
