"""The per-image statistics term (--lambda-stats): numbers against NumPy, and what it trains."""

import jax
import jax.numpy as jnp
import numpy as np

from refinekit.training import statistics as st


def _numpy_statistics(images):
    u = (images.astype(np.float64) + 1.0) / 2.0
    rows = []
    for img in u:
        h, w, c = img.shape
        padded = np.pad(img, ((1, 1), (1, 1), (0, 0)), mode="edge")
        local = np.zeros_like(img)
        for i in range(3):
            for j in range(3):
                local += padded[i : i + h, j : j + w] / 9.0
        row = [*img.mean(axis=(0, 1)), *img.std(axis=(0, 1))]
        row.append(
            0.5 * (np.abs(np.diff(img, axis=0)).mean() + np.abs(np.diff(img, axis=1)).mean())
        )
        row.append(np.abs(img - local).mean())
        if c == 3:
            row.append(img.std(axis=-1).mean())
        rows.append(row)
    return np.asarray(rows)


def test_statistics_match_numpy_for_grey_and_rgb():
    rng = np.random.default_rng(0)
    for channels in (1, 3):
        images = rng.uniform(-1, 1, (5, 9, 7, channels)).astype(np.float32)
        got = np.asarray(st.image_statistics(jnp.asarray(images)))
        np.testing.assert_allclose(got, _numpy_statistics(images), atol=1e-5)
        assert got.shape == (5, 2 * channels + 2 + (channels == 3))


def test_distance_is_zero_for_the_same_images_in_any_order_and_grows_with_a_change():
    rng = np.random.default_rng(1)
    real = jnp.asarray(rng.uniform(-1, 1, (16, 8, 8, 3)).astype(np.float32))
    shuffled = real[jnp.asarray(rng.permutation(16))]
    assert float(st.statistics_distance(shuffled, real)) < 1e-10
    # in units of the real spread: a shift of every image's brightness by one unit of the
    # brightness statistics' spread costs about 1 on each of the 3 brightness statistics
    small = float(st.statistics_distance(real * 0.9, real))
    large = float(st.statistics_distance(real * 0.5, real))
    assert 0 < small < large


def test_distance_compares_batches_of_different_sizes_at_quantiles():
    rng = np.random.default_rng(2)
    real = jnp.asarray(rng.uniform(-1, 1, (32, 6, 6, 1)).astype(np.float32))
    assert float(st.statistics_distance(real[::2], real)) < 0.3  # a half: sampling noise only
    assert float(st.statistics_distance(real[::2] * 0.3, real)) > 1.0


def test_gradient_is_finite_on_flat_images_and_grey_pixels():
    flat = jnp.zeros((4, 6, 6, 3))
    real = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, (4, 6, 6, 3)).astype(np.float32))
    grad = jax.grad(lambda x: st.statistics_distance(x, real))(flat)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).sum()) > 0


def test_the_term_asks_the_camera_for_the_per_image_spread_real_images_have():
    # Real images: the synthetic ones, each with its own gain. The patch discriminator cannot
    # see that spread; this term's gradient must ask the camera's gain spread to grow.
    from flax import nnx

    from refinekit.refiners.acquisition import Acquisition

    rng = np.random.default_rng(4)
    synthetic = rng.uniform(0.3, 0.7, (64, 8, 8, 1))
    real = np.clip(synthetic * rng.uniform(0.5, 1.5, (64, 1, 1, 1)), 0, 1)
    to_model = lambda u: jnp.asarray(u * 2 - 1, jnp.float32)  # noqa: E731
    camera = Acquisition(1)
    graph, params = nnx.split(camera, nnx.Param)

    def loss(p):
        return st.statistics_distance(nnx.merge(graph, p)(to_model(synthetic)), to_model(real))

    grads = jax.jit(jax.grad(loss))(params)  # one program: op by op compiles hundreds
    assert float(grads["log_gain_spread"][...][0]) < 0
