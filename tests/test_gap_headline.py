"""The headline distance on natural photos (scikit-image's bundled photos, helpers.photo_patches):
the FID paper's disturbances (Heusel et al. 2017) at levels 0..3 applied to one set of photo
patches, compared with a pixel-disjoint reference set of patches of the same photos.

Checked: the headline rises with the level of every kind, and level 0 -> 1 is a significant
rise for Gaussian noise, blur, black rectangles and salt-and-pepper (the paired change's 95%
interval excludes 0); the domain classifier reaches 0.85 held-out accuracy against heavy blur
and black rectangles, 0.75 against a strong swirl and strong contrast loss, with 400 patches
per set; the combination arithmetic; the scoring API.

The swirl is scikit-image's (radius half the patch side, strengths 1, 2, 4): the swirl in
helpers.py, whose radius reaches past the patch, is mostly interpolation blur at low
strength, and at strength 4 its stretched regions add back the high frequencies the
compressed ones lose, so no statistic here rises monotonically with it (a known limit).
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import DISTURBANCES, black_rectangles, gaussian_blur, photo_patches
from refinekit.gap import bootstrap, classifier, compute, domain, features, headline, swd
from refinekit.gap.scores import headline_distance

N = 250
SIZE = 24
REPLICATES = 100


def skimage_swirl(images: np.ndarray, strength: float, radius: float | None = None) -> np.ndarray:
    from skimage.transform import swirl

    if strength == 0:
        return images.copy()
    return np.stack(
        [
            swirl(
                im,
                strength=strength,
                radius=im.shape[0] / 2 if radius is None else radius,
                order=1,
                mode="reflect",
            )
            for im in images
        ]
    ).astype(np.float32)


# helpers' ladder with scikit-image's swirl (see the module docstring)
LADDER = {**DISTURBANCES, "swirl": (skimage_swirl, DISTURBANCES["swirl"][1])}


@pytest.fixture(scope="module")
def ladder() -> dict:
    """headline[(kind, level)] = (1 + REPLICATES,) array; the undisturbed set is the floor."""
    reference, held = photo_patches(N, SIZE, 0, 0), photo_patches(N, SIZE, 1, 0)
    rng = np.random.default_rng(0)
    c_ref = bootstrap.count_matrix(N, REPLICATES, rng)
    c_held = bootstrap.count_matrix(N, REPLICATES, rng)  # shared: paired levels
    sets = {("none", 0): held}
    for kind, (disturb, levels) in LADDER.items():
        for level in (1, 2, 3):
            sets[(kind, level)] = disturb(held, levels[level])
    basis = swd.fit_basis(reference)
    ref = compute.prepare(reference, c_ref, basis=basis)
    prepared = {f"{k}:{v}": compute.prepare(s, c_held, basis=basis) for (k, v), s in sets.items()}
    mean, std = features.standardiser(ref.features)
    compute.standardise([ref, *prepared.values()], mean, std)
    out = compute.compute_metrics(ref, prepared, 0, floor="none:0", basis=basis, headline_only=True)
    return {tuple(k.split(":")): v for k, v in out.values[headline.KEY].items()}


@pytest.mark.parametrize("kind", list(LADDER))
@pytest.mark.slow
def test_the_headline_rises_with_every_level(ladder, kind):
    points = [ladder[("none", "0")][0]] + [ladder[(kind, str(lv))][0] for lv in (1, 2, 3)]
    assert all(b > a for a, b in zip(points, points[1:], strict=False)), (kind, points)


@pytest.mark.parametrize(
    "kind", ["gaussian_noise", "gaussian_blur", "black_rectangles", "salt_and_pepper"]
)
@pytest.mark.slow
def test_level_one_is_a_significant_rise(ladder, kind):
    change = bootstrap.Estimate.from_replicates(ladder[(kind, "1")] - ladder[("none", "0")])
    assert change.low > 0, (kind, change)


@pytest.mark.parametrize(
    "kind, disturb, least",
    [
        ("blur 2.5", lambda x: gaussian_blur(x, 2.5), 0.85),
        ("rectangles", lambda x: black_rectangles(x, 0.5, 6), 0.85),
        # a warp about the centre: edges bend one way on one side and the other way on the
        # other, which a spatial mean alone cancels (0.58 with it; the cell means see it)
        ("swirl 4", lambda x: skimage_swirl(x, 4.0, radius=x.shape[1]), 0.75),
        ("contrast 0.4", lambda x: (x - x.mean(axis=(1, 2, 3), keepdims=True)) * 0.4 + 0.5, 0.75),
    ],
)
@pytest.mark.slow
@pytest.mark.extended  # 400 images per set, four trainings: opt-in
@pytest.mark.full_classifiers  # what the domain classifier measures
def test_domain_classifier_sees_heavy_disturbances_with_400_images_per_set(kind, disturb, least):
    reference, held = photo_patches(400, 32, 0, 1), photo_patches(400, 32, 1, 1)
    scores = classifier.domain_scores(
        classifier.classifier_inputs(disturb(held)), classifier.classifier_inputs(reference), 0
    )
    ones = np.ones((1, len(scores.scores_x)))
    accuracy = domain.balanced_accuracy(scores.scores_x, scores.scores_ref, ones, ones)[0]
    assert accuracy >= least, (kind, accuracy)


def test_combination_is_the_mean_signed_log_z_against_the_floor():
    floor = np.array([1.0, 0.9, 1.1, 1.0, 0.8, 1.2])  # point 1.0, replicates' sd
    sd = np.std(floor[1:], ddof=1)
    values = {
        "kid": {"real_holdout": floor, "x": np.full(6, 1.0 + 3 * sd)},
        "swd": {"real_holdout": 2 * floor, "x": np.full(6, 2.0 - 2 * sd)},  # 2x: sd doubles
    }
    combined, details = headline.combine(values, "real_holdout")
    expected = (np.log1p(3.0) - np.log1p(1.0)) / 2  # z = 3 and z = -1
    np.testing.assert_allclose(combined["x"], expected, rtol=1e-9)
    assert combined["real_holdout"][0] == 0.0
    assert details["x"]["components"] == pytest.approx({"kid": 3.0, "swd": -1.0})


def test_scores_headline_distance_is_near_zero_for_real_and_large_for_blur():
    real = photo_patches(200, 16, 0, 2)
    other = photo_patches(100, 16, 1, 2)
    same = headline_distance(real, other)
    blurred = headline_distance(real, gaussian_blur(other, 1.5))
    assert abs(same) < 1.0 and blurred > same + 1.0, (same, blurred)
    assert headline_distance(real, other) == same  # seeded


@pytest.mark.slow
def test_domain_scores_of_the_same_sets_are_trained_once_per_process(monkeypatch):
    """A second report on the same sets recalls the held-out scores (training is deterministic
    for given inputs): equal numbers, nothing trained, the progress total still reached, and
    the caller's copy cannot change the cached one. Other sets or seeds train afresh."""
    rng = np.random.default_rng(0)
    x = classifier.classifier_inputs(rng.random((40, 8, 8, 1)))
    ref = classifier.classifier_inputs(rng.random((40, 8, 8, 1)) ** 2)
    classifier.clear_domain_cache()
    fresh = classifier.domain_scores(x, ref, 0)
    expected = {name: getattr(fresh, name).copy() for name in ("index_x", "scores_x")}
    fresh.scores_x[:] = 99.0  # the caller's array, not the cache's

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(classifier, "train_early_stopping", no_training)
    steps = []
    again = classifier.domain_scores(x, ref, 0, on_step=lambda: steps.append(1))
    assert len(steps) == classifier.domain_steps(40, 40)
    for name, value in expected.items():
        np.testing.assert_array_equal(getattr(again, name), value)
    with pytest.raises(AssertionError, match="trained again"):  # another seed is not a hit
        classifier.domain_scores(x, ref, 1)
    with pytest.raises(AssertionError, match="trained again"):  # nor are other images
        classifier.domain_scores(x[::-1].copy(), ref, 0)
    classifier.clear_domain_cache()
    with pytest.raises(AssertionError, match="trained again"):
        classifier.domain_scores(x, ref, 0)


def test_memo_keys_follow_bytes_shape_dtype_and_salt_and_the_store_drops_the_oldest():
    from refinekit.gap import memo

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert memo.digest(a, salt=1) == memo.digest(a.copy(), salt=1)
    assert memo.digest(a.T, salt=1) == memo.digest(np.ascontiguousarray(a.T), salt=1)
    assert memo.digest(a, salt=1) != memo.digest(a, salt=2)
    assert memo.digest(a) != memo.digest(a.reshape(4, 3))  # same bytes, other shape
    assert memo.digest(a) != memo.digest(a.view(np.int32))  # same bytes, other dtype
    store: dict = {}
    for key in "abc":
        memo.remember(store, key, key.upper(), size=2)
    assert store == {"b": "B", "c": "C"}
