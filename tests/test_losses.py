"""Losses against NumPy / hand values."""

import jax.numpy as jnp
import numpy as np

from refinekit.training import losses


def _np_ce(logits, label):
    logits = np.asarray(logits, np.float64)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -logp[..., label].mean()


def test_patch_cross_entropy_is_the_mean_over_all_patches():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    for label in (0, 1):
        np.testing.assert_allclose(
            float(losses.patch_cross_entropy(jnp.asarray(logits), label)),
            _np_ce(logits, label),
            rtol=1e-5,
        )
    # equal logits: log 2 per patch, whatever the number of patches
    assert abs(float(losses.patch_cross_entropy(jnp.zeros((7, 3, 3, 2)), 1)) - np.log(2)) < 1e-6


def test_patch_accuracy_and_margin():
    logits = jnp.asarray([[[[0.0, 1.0], [2.0, 0.0]]]])  # one patch real, one refined
    assert float(losses.patch_accuracy(logits, losses.REAL)) == 0.5
    np.testing.assert_allclose(np.asarray(losses.real_margin(logits)), [[[1.0, -2.0]]])


def test_self_regularisation_is_a_mean_so_it_does_not_scale_with_size():
    small = jnp.zeros((2, 4, 4, 1))
    large = jnp.zeros((8, 32, 32, 1))
    assert float(losses.self_regularisation(small + 0.5, small, "identity")) == 0.5
    assert float(losses.self_regularisation(large + 0.5, large, "identity")) == 0.5


def test_psi_variants_match_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(losses.psi(jnp.asarray(x), "mean-channels"))[..., 0], x.mean(-1), rtol=1e-6
    )
    pooled = x.reshape(2, 2, 4, 2, 4, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(
        np.asarray(losses.psi(jnp.asarray(x), "downsample")), pooled, rtol=1e-5, atol=1e-6
    )
    # a change that keeps each 4x4 block's mean is invisible to the downsample psi
    checker = np.indices((8, 8)).sum(0) % 2 * 2 - 1.0
    y = x + checker[None, :, :, None].astype(np.float32) * 0.1
    assert float(losses.self_regularisation(jnp.asarray(y), jnp.asarray(x), "downsample")) < 1e-6
    assert float(losses.self_regularisation(jnp.asarray(y), jnp.asarray(x), "identity")) > 0.09
