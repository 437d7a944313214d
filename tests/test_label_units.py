"""Label-aware pieces against NumPy / hand values: masked CE, projection discriminator,
PatchNCE, the low-pass psi, class discovery, the labelled history buffer, the classifier."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from refinekit.config import TrainConfig
from refinekit.errors import ConfigError
from refinekit.nn.models import PatchDiscriminator
from refinekit.training import content, labels, losses, replay
from refinekit.training.labels import classifier as label_classifier
from refinekit.training.labels import terms as label_terms


def _np_log_softmax(x):
    x = np.asarray(x, np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_masked_cross_entropy_is_the_mean_over_labelled_rows():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)).astype(np.float32)
    y = np.array([2, -1, 0, 3, -1])
    logp = _np_log_softmax(logits)
    expected = -np.mean([logp[i, y[i]] for i in range(5) if y[i] >= 0])
    got = float(losses.masked_cross_entropy(jnp.asarray(logits), jnp.asarray(y)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert float(losses.masked_cross_entropy(jnp.asarray(logits), jnp.full(5, -1))) == 0.0


def test_masked_kl_matches_numpy_and_is_zero_for_equal_logits():
    rng = np.random.default_rng(1)
    target, logits = rng.normal(size=(2, 4, 3)).astype(np.float32)
    valid = np.array([True, False, True, True])
    p, logq = np.exp(_np_log_softmax(target)), _np_log_softmax(logits)
    expected = np.mean([(p[i] * (np.log(p[i]) - logq[i])).sum() for i in (0, 2, 3)])
    got = float(losses.masked_kl(jnp.asarray(target), jnp.asarray(logits), jnp.asarray(valid)))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    same = losses.masked_kl(jnp.asarray(target), jnp.asarray(target), jnp.asarray(valid))
    assert abs(float(same)) < 1e-6


@pytest.mark.slow
def test_prediction_target_costs_nothing_for_the_identity_but_class_target_does():
    """label_target prediction compares C(aug(R(x))) with C(aug(x)): an untrained C is unsure,
    so the class target penalises the identity while the prediction target does not."""
    fns = label_classifier.ClassifierFunctions(1, 3, (16, 16), seed=0)
    x = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (4, 16, 16, 1)), jnp.float32)
    y = jnp.asarray([0, 1, 2, -1])
    key = jax.random.key(3)
    kl, _ = fns.label_loss(fns.init_params, x, y, key, synthetic=x)
    ce, _ = fns.label_loss(fns.init_params, x, y, key)
    assert abs(float(kl)) < 1e-6 and float(ce) > 0.5
    moved, _ = fns.label_loss(fns.init_params, -x, y, key, synthetic=x)
    assert float(moved) > 0.0


def test_projection_discriminator_matches_a_hand_computation():
    """Two 1x1 convs (3 -> 2 features, 2 -> 2 logits) and a 2-class embedding."""
    layers = (("conv", 1, 1, 2), ("conv", 1, 1, 2))
    disc = PatchDiscriminator(3, layers, rngs=__import__("flax").nnx.Rngs(0), classes=2)
    w1 = np.array([[1.0, -1.0], [0.5, 2.0], [0.0, 1.0]], np.float32)
    b1 = np.array([0.1, -0.2], np.float32)
    w2 = np.array([[1.0, 0.0], [2.0, -1.0]], np.float32)
    b2 = np.array([0.0, 0.3], np.float32)
    embed = np.array([[1.0, 2.0], [-3.0, 0.5]], np.float32)
    disc.convs[0].kernel[...] = w1.reshape(1, 1, 3, 2)
    disc.convs[0].bias[...] = b1
    disc.convs[1].kernel[...] = w2.reshape(1, 1, 2, 2)
    disc.convs[1].bias[...] = b2
    disc.embed[...] = embed
    x = np.random.default_rng(1).normal(size=(3, 2, 2, 3)).astype(np.float32)
    y = np.array([1, 0, -1])
    phi = np.maximum(x @ w1 + b1, 0)  # features entering the last conv
    expected = phi @ w2 + b2
    for i in range(3):
        if y[i] >= 0:
            expected[i, ..., 1] += phi[i] @ embed[y[i]]  # only the "real" logit
    got = np.asarray(disc(jnp.asarray(x), jnp.asarray(y)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # without labels (or all -1) it is the unconditional discriminator
    np.testing.assert_allclose(np.asarray(disc(jnp.asarray(x))), phi @ w2 + b2, rtol=1e-5)


def _np_patch_nce(q, k, locations, tau):
    n, h, w, f = q.shape
    q = q.reshape(n, h * w, f)[:, locations]
    k = k.reshape(n, h * w, f)[:, locations]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    k = k / np.linalg.norm(k, axis=-1, keepdims=True)
    total = 0.0
    for b in range(n):
        logp = _np_log_softmax(q[b] @ k[b].T / tau)
        total += -np.mean(np.diag(logp))
    return total / n


def test_patch_nce_matches_numpy_and_is_low_for_identical_maps():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    k = rng.normal(size=(2, 3, 3, 4)).astype(np.float32)
    locations = np.array([0, 4, 8, 2, 5])
    got = float(content.patch_nce(jnp.asarray(q), jnp.asarray(k), jnp.asarray(locations), 0.5))
    np.testing.assert_allclose(got, _np_patch_nce(q, k, locations, 0.5), rtol=1e-5)
    same = float(content.patch_nce(jnp.asarray(k), jnp.asarray(k), jnp.asarray(locations)))
    assert same < got
    # the keys are constants: no gradient flows into them
    grad_k = jax.grad(lambda kk: content.patch_nce(jnp.asarray(q), kk, jnp.asarray(locations)))(
        jnp.asarray(k)
    )
    assert float(jnp.abs(grad_k).max()) == 0.0


def _np_orientation(images, sigma):
    g = images.mean(axis=-1)
    p = np.pad(g, ((0, 0), (1, 1), (1, 1)), mode="edge")
    gx = (p[:, 1:-1, 2:] - p[:, 1:-1, :-2]) / 2
    gy = (p[:, 2:, 1:-1] - p[:, :-2, 1:-1]) / 2
    taps = np.asarray(losses.gaussian_kernel(sigma))
    r = len(taps) // 2

    def blur(a):
        a = np.pad(a, ((0, 0), (r, r), (r, r)), mode="edge")
        a = sum(t * a[:, i : i + g.shape[1], :] for i, t in enumerate(taps))
        return sum(t * a[:, :, i : i + g.shape[2]] for i, t in enumerate(taps))

    jxx, jyy, jxy = blur(gx * gx), blur(gy * gy), blur(gx * gy)
    energy = jxx + jyy + content.STRUCTURE_EPS
    return np.stack([(jxx - jyy) / energy, 2 * jxy / energy], axis=-1)


def test_orientation_field_matches_numpy_and_reads_stripe_direction():
    rng = np.random.default_rng(3)
    images = rng.uniform(-1, 1, (2, 9, 11, 3)).astype(np.float32)
    got = np.asarray(content.orientation_field(jnp.asarray(images), 1.0))
    np.testing.assert_allclose(got, _np_orientation(images, 1.0), atol=1e-5)
    stripes = np.where(np.arange(16) % 4 < 2, 1.0, -1.0)[None, None, :, None]
    stripes = np.broadcast_to(stripes, (1, 16, 16, 1)).astype(np.float32)
    vertical = np.asarray(content.orientation_field(jnp.asarray(stripes)))[0, 8, 8]
    horizontal = np.asarray(content.orientation_field(jnp.asarray(stripes.swapaxes(1, 2))))
    # Edges along y: gradient energy all in x, so o = (Jxx / (Jxx + eps), 0), close to (1, 0).
    assert vertical[0] > 0.95 and abs(vertical[1]) < 1e-6
    np.testing.assert_allclose(horizontal[0, 8, 8], -vertical, atol=1e-6)


def test_structure_loss_forgives_contrast_and_grain_but_not_crossing_bands():
    stripes = np.where(np.arange(16) % 4 < 2, 1.0, -1.0)[None, None, :, None]
    x = jnp.asarray(np.broadcast_to(stripes, (1, 16, 16, 1)).astype(np.float32))
    grid = jnp.maximum(x, jnp.swapaxes(x, 1, 2))
    grain = x + 0.1 * jnp.asarray(np.random.default_rng(0).standard_normal(x.shape), jnp.float32)
    assert float(content.structure_loss(x, x)) == 0.0
    crossing = float(content.structure_loss(grid, x))
    assert crossing > 0.4
    assert float(content.structure_loss(0.5 * x + 0.2, x)) < crossing / 10
    assert float(content.structure_loss(grain, x)) < crossing / 10
    # The target o(x) is held constant: only the refined side gets a gradient.
    grad_x = jax.grad(lambda s: content.structure_loss(grid, s))(x)
    assert float(jnp.abs(grad_x).max()) == 0.0


def test_lowpass_spreads_a_point_as_the_outer_product_of_its_taps():
    image = np.zeros((1, 9, 9, 1), np.float32)
    image[0, 4, 4, 0] = 1.0
    taps = np.asarray(losses.gaussian_kernel(1.0))
    assert taps.shape == (5,) and abs(taps.sum() - 1) < 1e-6
    blurred = np.asarray(losses.lowpass(jnp.asarray(image), sigma=1.0))[0, :, :, 0]
    np.testing.assert_allclose(blurred[2:7, 2:7], np.outer(taps, taps), rtol=1e-5)
    flat = np.asarray(losses.lowpass(jnp.full((1, 8, 8, 1), 0.3)))
    np.testing.assert_allclose(flat, 0.3, rtol=1e-6)
    assert losses.content_psi("identity", "lowpass") == "lowpass"
    assert losses.content_psi("downsample", "l1") == "downsample"


def test_folder_classes_need_every_image_in_one_of_two_or_more_subfolders(tmp_path):
    root = tmp_path / "syn"
    root.mkdir()
    (tmp_path / "real").mkdir()
    paths = [root / "a" / "1.png", root / "b" / "2.png", root / "a" / "x" / "3.png"]
    assert labels.folder_classes(paths, root) == ["a", "b", "a"]
    assert labels.folder_classes(paths + [root / "top.png"], root) is None
    assert labels.folder_classes([root / "a" / "1.png"], root) is None
    real = [tmp_path / "real" / c / "r.png" for c in ("b", "a")]
    found = labels.find_labels(paths, root, real, tmp_path / "real")
    assert found.classes == ["a", "b"] and found.real_matches
    assert found.synthetic.tolist() == [0, 1, 0] and found.real.tolist() == [1, 0]
    flat = labels.find_labels(paths, root, [tmp_path / "real" / "r.png"], tmp_path / "real")
    assert not flat.real_matches and flat.real.tolist() == [-1]


def test_plan_says_why_each_option_is_on_or_off():
    extra = {"classes": ["a", "b"], "real_classes": True}
    on = labels.plan(TrainConfig(refiner="resnet", extra=extra))
    assert on.label_loss and on.conditional and on.n_classes == 2
    assert "label loss on" in on.reasons[0] and "--lambda-label 0" in on.reasons[0]
    off = labels.plan(
        TrainConfig(refiner="resnet", extra=extra, lambda_label=0.0, class_conditional="off")
    )
    assert not off.label_loss and not off.conditional
    assert "--lambda-label 0" in off.reasons[0]
    none = labels.plan(TrainConfig())
    assert not none.label_loss and "no class subfolders" in none.reasons[0]
    with pytest.raises(ConfigError, match="--class-conditional on"):
        labels.check_conditional(
            TrainConfig(refiner="resnet", class_conditional="on", extra={"classes": ["a"]})
        )
    with pytest.raises(ConfigError, match="--content"):
        TrainConfig(refiner="resnet", content="sobel")


def test_history_buffer_keeps_each_image_with_its_label():
    buffer = replay.init(4, (1, 1, 1))
    images = jnp.arange(2, dtype=jnp.float32).reshape(2, 1, 1, 1) + 10
    buffer = replay.add(buffer, images, jax.random.key(0), jnp.array([3, 5]))
    buffer = replay.add(buffer, images + 10, jax.random.key(1))  # no labels: -1
    drawn, drawn_labels = replay.sample_labelled(buffer, 16, jax.random.key(2))
    np.testing.assert_array_equal(drawn, replay.sample(buffer, 16, jax.random.key(2)))
    table = {10.0: 3, 11.0: 5, 20.0: -1, 21.0: -1}
    assert [table[float(v)] for v in drawn.ravel()] == drawn_labels.tolist()


@pytest.mark.slow
def test_classifier_learns_separable_classes_compiles_once_and_stays_in_range():
    rng = np.random.default_rng(3)
    n = 48
    ids = np.arange(n) % 2
    images = np.zeros((n, 16, 16, 1), np.uint8)
    images[ids == 0, 2:14, 6:10] = 255  # vertical bar
    images[ids == 1, 6:10, 2:14] = 255  # horizontal bar
    images = np.clip(images + rng.integers(0, 30, images.shape), 0, 255).astype(np.uint8)
    fns = label_classifier.ClassifierFunctions(1, 2, (16, 16), seed=0)
    before = jax.tree.map(np.asarray, fns.init_params)
    params = label_classifier.train_classifier(
        fns, jnp.asarray(images), jnp.asarray(ids, jnp.int32), 60, seed=0
    )
    assert fns.trace_count == 1
    assert label_classifier.accuracy(fns, params, images, ids) == 1.0
    # its initial parameters are not consumed (init_extras copies them for every state)
    jax.tree.map(np.testing.assert_array_equal, before, jax.tree.map(np.asarray, fns.init_params))
    augmented = label_classifier.augment_for_classifier(
        jnp.asarray(images, jnp.float32) / 127.5 - 1, jax.random.key(0)
    )
    assert augmented.shape == images.shape and bool(jnp.isfinite(augmented).all())


@pytest.mark.slow
def test_label_loss_equals_cross_entropy_of_the_frozen_classifier():
    fns = label_classifier.ClassifierFunctions(1, 3, (16, 16), seed=0)
    x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (4, 16, 16, 1)), jnp.float32)
    y = jnp.array([0, 2, -1, 1])
    key = jax.random.key(5)
    ce, acc = fns.label_loss(fns.init_params, x, y, key)
    logits = np.asarray(fns.apply(fns.init_params, label_classifier.augment_for_classifier(x, key)))
    logp = _np_log_softmax(logits)
    rows = [0, 1, 3]
    np.testing.assert_allclose(float(ce), -np.mean([logp[i, int(y[i])] for i in rows]), rtol=1e-5)
    hits = [int(np.argmax(logits[i]) == int(y[i])) for i in rows]
    np.testing.assert_allclose(float(acc), np.mean(hits), rtol=1e-6)


def test_label_warmup_ramps_the_pretraining_weight_linearly():
    def extra_loss(step, adversarial=False, warmup=10):
        config = TrainConfig(refiner="resnet", extra={"classes": ["a", "b"]}, label_warmup=warmup)
        terms = label_terms.LabelTerms(config, (16, 16, 1))
        x = jnp.asarray(np.random.default_rng(4).uniform(-1, 1, (4, 16, 16, 1)), jnp.float32)
        total, metrics = terms.refiner_extra_loss(
            terms.init_extras(), None, x, x, jnp.asarray([0, 1, 0, 1]), jax.random.key(0),
            adversarial, jnp.int32(step),
        )  # fmt: skip
        return float(total), float(metrics["label_loss"])

    full, ce = extra_loss(0, warmup=0)
    np.testing.assert_allclose(full, 5.0 * ce, rtol=1e-6)  # lambda_label 5, no ramp
    assert extra_loss(0)[0] == 0.0
    np.testing.assert_allclose(extra_loss(5)[0], 0.5 * full, rtol=1e-5)
    np.testing.assert_allclose(extra_loss(25)[0], full, rtol=1e-6)
    np.testing.assert_allclose(extra_loss(0, adversarial=True)[0], full, rtol=1e-6)


def test_label_warmup_default_ramps_on_rgb_only():
    config = TrainConfig(
        refiner="resnet", extra={"classes": ["a", "b"]}, pretrain_refiner_steps=600
    )
    assert label_terms.LabelTerms(config, (16, 16, 3)).warmup == 300
    assert label_terms.LabelTerms(config, (16, 16, 1)).warmup == 0
    chosen = config.replace(label_warmup=40)
    assert label_terms.LabelTerms(chosen, (16, 16, 1)).warmup == 40
    with pytest.raises(ConfigError, match="--label-warmup"):
        TrainConfig(refiner="resnet", label_warmup=-1)
