"""The gap report's estimators against NumPy / hand computations on small cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from helpers import FEATURE_SHA256
from refinekit.gap import (
    bootstrap,
    density,
    domain,
    features,
    frechet,
    histogram,
    inputs,
    kid,
    spectrum,
)


def naive_kid(x, y, ids_x=None, ids_y=None):
    """Unbiased MMD^2 with the cubic kernel by explicit loops; pairs with equal ids are skipped."""
    d = x.shape[1]
    ids_x = np.arange(len(x)) if ids_x is None else ids_x
    ids_y = np.arange(len(y)) if ids_y is None else ids_y

    def k(a, b):
        return (a @ b / d + 1.0) ** 3

    def within(z, ids):
        vals = [k(z[i], z[j]) for i in range(len(z)) for j in range(len(z)) if ids[i] != ids[j]]
        return np.mean(vals)

    cross = np.mean([k(a, b) for a in x for b in y])
    return within(x, ids_x) + within(y, ids_y) - 2 * cross


def test_kid_matches_the_loop_definition():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(23, 6)), rng.normal(0.3, 1.2, size=(17, 6))
    assert kid.kid(x, y)[0] == pytest.approx(naive_kid(x, y), rel=1e-10, abs=1e-12)


def test_kid_of_a_bootstrap_resample_skips_pairs_of_the_same_image():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(15, 4)), rng.normal(size=(12, 4))
    ix, iy = rng.integers(0, 15, 15), rng.integers(0, 12, 12)
    cx = np.bincount(ix, minlength=15)[None]
    cy = np.bincount(iy, minlength=12)[None]
    expected = naive_kid(x[ix], y[iy], ix, iy)
    assert kid.kid(x, y, cx, cy)[0] == pytest.approx(expected, rel=1e-10)


def test_kid_is_unbiased_near_zero_for_one_distribution_and_blocks_do_not_matter(monkeypatch):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(700, 8)), rng.normal(size=(600, 8))
    value = kid.kid(x, y)[0]
    assert abs(value) < 0.05
    monkeypatch.setattr(kid, "BLOCK_ROWS", 64)
    kid._weighted_kernel_sum.cache_clear()
    assert kid.kid(x, y)[0] == pytest.approx(value, rel=1e-9)


def numpy_frechet(x, y):
    """FID's formula with np.cov and the eigenvalues of the (non-symmetric) product."""
    mx, my = x.mean(0), y.mean(0)
    cx, cy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    root = np.sqrt(np.clip(np.linalg.eigvals(cx @ cy).real, 0, None)).sum()
    return ((mx - my) ** 2).sum() + np.trace(cx) + np.trace(cy) - 2 * root


def test_frechet_matches_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 5)) @ rng.normal(size=(5, 5))
    y = rng.normal(0.5, 1.0, size=(60, 5)) @ rng.normal(size=(5, 5))
    mx, cx = frechet.weighted_moments(x, np.ones((1, len(x))))
    my, cy = frechet.weighted_moments(y, np.ones((1, len(y))))
    assert frechet.frechet_distance(mx, cx, my, cy)[0] == pytest.approx(
        numpy_frechet(x, y), rel=1e-8
    )
    assert frechet.frechet_distance(mx, cx, mx, cx)[0] == pytest.approx(0.0, abs=1e-8)


def test_weighted_moments_equal_moments_of_the_resampled_rows():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 3))
    counts = rng.multinomial(20, np.full(20, 1 / 20), size=2)
    means, covs = frechet.weighted_moments(x, counts)
    for c, m, cov in zip(counts, means, covs, strict=True):
        rows = np.repeat(x, c, axis=0)
        np.testing.assert_allclose(m, rows.mean(0), rtol=1e-12)
        np.testing.assert_allclose(cov, np.cov(rows, rowvar=False), rtol=1e-10)


def test_frechet_flags_sets_smaller_than_twice_the_feature_size():
    assert frechet.small_set_flag({"a": 500, "b": 400}, 96) is None
    flag = frechet.small_set_flag({"a": 500, "b": 100}, 96)
    assert "b 100" in flag and "a 500" not in flag


def naive_density_coverage(real, fake, k):
    d_rr = np.linalg.norm(real[:, None] - real[None], axis=-1)
    radii = np.sort(d_rr, axis=1)[:, k]
    d_rf = np.linalg.norm(real[:, None] - fake[None], axis=-1)
    inside = d_rf < radii[:, None]
    return inside.sum() / (k * len(fake)), inside.any(axis=1).mean()


def test_density_and_coverage_match_the_papers_definition():
    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(60, 3)), rng.normal(0.4, 1.0, size=(45, 3))
    radii = density.neighbour_radii(real, 5)
    dens, cover = density.density_coverage(real, radii, fake, np.ones((1, 60)), np.ones((1, 45)))
    want_d, want_c = naive_density_coverage(real, fake, 5)
    assert dens[0] == pytest.approx(want_d) and cover[0] == pytest.approx(want_c)


def test_density_with_counts_equals_the_resampled_sets_with_fixed_radii():
    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(30, 2)), rng.normal(size=(25, 2))
    radii = density.neighbour_radii(real, 5)
    cr = rng.multinomial(30, np.full(30, 1 / 30))[None]
    cf = rng.multinomial(25, np.full(25, 1 / 25))[None]
    dens, cover = density.density_coverage(real, radii, fake, cr, cf)
    r_idx, f_idx = np.repeat(np.arange(30), cr[0]), np.repeat(np.arange(25), cf[0])
    inside = (((real[r_idx][:, None] - fake[f_idx][None]) ** 2).sum(-1)) < radii[r_idx][:, None]
    assert dens[0] == pytest.approx(inside.sum() / (5 * len(f_idx)))
    assert cover[0] == pytest.approx(inside.any(axis=1).mean())


def test_wasserstein1_equals_the_sorted_sample_distance():
    rng = np.random.default_rng(7)
    # Values on bin centres, so binning loses nothing.
    a = (rng.integers(0, histogram.BINS, size=(1, 40, 40, 1)) + 0.5) / histogram.BINS
    b = (rng.integers(50, histogram.BINS, size=(1, 40, 40, 1)) + 0.5) / histogram.BINS
    sa, sb = (
        histogram.pixel_stats(a.astype(np.float32)),
        histogram.pixel_stats(b.astype(np.float32)),
    )
    one = np.ones((1, 1))
    w1 = histogram.wasserstein1(
        histogram.set_histograms(sa, one), histogram.set_histograms(sb, one)
    )
    expected = np.abs(np.sort(a.ravel()) - np.sort(b.ravel())).mean()
    assert w1[0, 0] == pytest.approx(expected, rel=1e-6)


def test_set_moments_are_the_pixel_mean_and_std():
    rng = np.random.default_rng(8)
    images = rng.random((5, 6, 7, 3)).astype(np.float32)
    counts = np.array([[1, 1, 1, 1, 1], [2, 0, 1, 0, 2]])
    mean, std = histogram.set_moments(histogram.pixel_stats(images), counts)
    rows = np.repeat(images, counts[1], axis=0).astype(np.float64)
    np.testing.assert_allclose(mean[1], rows.mean(axis=(0, 1, 2)), rtol=1e-10)
    np.testing.assert_allclose(std[1], rows.std(axis=(0, 1, 2)), rtol=1e-8)


def test_spectrum_of_a_cosine_peaks_at_its_ring_and_a_flat_image_has_none():
    size, cycles = 32, 5
    xx = np.arange(size)[None, :, None]
    wave = 0.5 + 0.4 * np.cos(2 * np.pi * cycles * xx / size) * np.ones((size, 1, 1))
    spectra = spectrum.image_spectra(wave[None].astype(np.float32))
    assert np.argmax(spectra[0]) + 1 == cycles
    assert spectrum.image_spectra(np.full((1, 16, 16, 1), 0.3, np.float32)).max() == pytest.approx(
        0.0, abs=1e-20
    )


def test_spectrum_bands_split_the_rings_in_thirds():
    log_a = np.zeros((1, 12))
    log_b = np.zeros((1, 12))
    log_b[0, 8:] = 1.0  # rings 9..12: frequencies 0.75..1.0, the high band only
    bands = spectrum.band_distances(log_b, log_a)
    assert bands["low"][0] == 0 and bands["mid"][0] == 0 and bands["high"][0] > 0


def test_auc_and_accuracy_match_pairwise_counting():
    rng = np.random.default_rng(9)
    pos, neg = rng.normal(0.5, 1, 30).round(1), rng.normal(0, 1, 25).round(1)  # ties on purpose
    wp, wn = rng.integers(0, 3, 30).astype(float)[None], rng.integers(0, 3, 25).astype(float)[None]
    wins = sum(
        a * b * (1.0 if p > n else 0.5 if p == n else 0.0)
        for p, a in zip(pos, wp[0], strict=True)
        for n, b in zip(neg, wn[0], strict=True)
    )
    assert domain.weighted_auc(pos, neg, wp, wn)[0] == pytest.approx(wins / (wp.sum() * wn.sum()))
    acc = domain.balanced_accuracy(pos, neg, np.ones((1, 30)), np.ones((1, 25)))[0]
    expected = (
        np.where(pos == 0, 0.5, pos > 0).mean() + np.where(neg == 0, 0.5, neg < 0).mean()
    ) / 2
    assert acc == pytest.approx(expected)
    assert domain.proxy_a_distance(np.array([0.5, 1.0]))[0] == 0.0
    assert domain.proxy_a_distance(np.array([0.5, 1.0]))[1] == 2.0


def test_binomial_p_value_matches_enumeration():
    n = 12
    for k in (0, 3, 6, 7, 10, 12):
        brute = sum(math.comb(n, j) for j in range(k, n + 1)) / 2**n
        assert domain.binomial_p_value(k, n) == pytest.approx(brute, rel=1e-12)
    assert (
        domain.binomial_p_value(9000, 10000) < 1e-300 or domain.binomial_p_value(9000, 10000) == 0.0
    )


def test_count_matrix_is_seeded_with_a_first_row_of_ones():
    a = bootstrap.count_matrix(50, 10, np.random.default_rng(0))
    b = bootstrap.count_matrix(50, 10, np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert (a[0] == 1).all() and (a.sum(axis=1) == 50).all()


def test_gap_closed_and_interval_arithmetic():
    d_s, d_f, d_floor = np.array([10.0, 11]), np.array([4.0, 5]), np.array([2.0, 3])
    np.testing.assert_allclose(bootstrap.gap_closed(d_s, d_f, d_floor), [0.75, 0.75])
    e = bootstrap.Estimate.from_replicates(np.array([1.0, *np.linspace(5, 7, 101)]))
    # Centred on the point estimate: the bootstrap's own shift (median 6) is removed.
    assert e.low < 1.0 < e.high and e.high - e.low == pytest.approx(1.9, abs=0.01)
    assert not bootstrap.Estimate(0.1, -0.1, 0.3).excludes_zero()
    assert bootstrap.Estimate(0.1, 0.05, 0.3).excludes_zero()


def test_feature_weights_are_pinned():
    assert features.feature_nets().sha256() == FEATURE_SHA256


def test_features_do_not_depend_on_batch_size_or_batch_neighbours():
    rng = np.random.default_rng(10)
    images = rng.random((11, 16, 16, 3)).astype(np.float32)
    a = features.extract_features(images, batch_size=4)
    b = features.extract_features(images, batch_size=16)
    c = features.extract_features(images[5:6], batch_size=4)
    # Float32 convolutions may round differently at another batch size (a few ULPs); a leak
    # between batch neighbours would differ by far more.
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a[5:6], c, rtol=1e-5, atol=1e-6)
    assert a.shape == (11, features.FEATURE_DIM)


def test_gray_features_equal_those_of_gray_repeated_to_rgb():
    gray = np.random.default_rng(11).random((3, 16, 16, 1)).astype(np.float32)
    np.testing.assert_allclose(
        features.extract_features(gray),
        features.extract_features(np.repeat(gray, 3, -1)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_canonical_order_ignores_the_input_order():
    images = np.random.default_rng(12).random((9, 4, 4, 1)).astype(np.float32)
    order = inputs.canonical_order(images)
    for perm in itertools.islice(itertools.permutations(range(9)), 0, 400, 97):
        shuffled = images[list(perm)]
        np.testing.assert_array_equal(shuffled[inputs.canonical_order(shuffled)], images[order])


def test_real_split_is_seeded_disjoint_and_stratified():
    labels = ["a"] * 7 + ["b"] * 5
    a, b = inputs.split_real(12, labels, seed=3)
    a2, _ = inputs.split_real(12, labels, seed=3)
    np.testing.assert_array_equal(a, a2)
    assert any(not np.array_equal(a, inputs.split_real(12, labels, seed=s)[0]) for s in (4, 5))
    assert set(a).isdisjoint(b) and len(a) + len(b) == 12
    assert sum(labels[i] == "a" for i in a) == 4 and sum(labels[i] == "b" for i in a) == 3
