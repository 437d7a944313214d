"""Refiner kinds: the camera model's stages against NumPy, its identity start, labels kept by
construction, reproducible draws, and the CLI path train -> export -> refine for each kind."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy import ndimage

from conftest import TINY, write_images
from refinekit.config import TrainConfig
from refinekit.nn.models import build_models
from refinekit.presets import REFINER_DEFAULTS
from refinekit.refiners import acquisition as acq
from refinekit.refiners import anchored, camera_params


def _apply(module, x):
    """module(x) compiled once (op by op, the camera's vmapped stages are slow)."""
    return nnx.jit(lambda m, v: m(v))(module, x)


def _shape(size=16):
    """A filled square on a dark background, off centre, in [-1, 1] (1, H, W, 1)."""
    img = np.full((size, size), 0.1, np.float32)
    img[3:9, 5:12] = 0.9
    return jnp.asarray(img[None, :, :, None] * 2 - 1)


@pytest.mark.slow
def test_camera_starts_near_the_identity():
    camera = acq.Acquisition(1)
    x = _shape()
    # 7.95 bits, a 0.3-px blur (most at a corner of the shape) and per-image spreads of 5%
    assert float(jnp.abs(_apply(camera, x) - x).max()) < 0.12  # 6% of the range


def test_blur_matches_a_numpy_gaussian():
    rng = np.random.default_rng(0)
    image = rng.random((12, 10, 2)).astype(np.float32)
    sigma = 0.8
    out = np.asarray(acq.gaussian_blur(jnp.asarray(image), jnp.asarray(sigma)))
    taps = np.arange(-acq.BLUR_RADIUS, acq.BLUR_RADIUS + 1)
    kernel = np.exp(-0.5 * (taps / sigma) ** 2)
    kernel /= kernel.sum()
    expected = ndimage.correlate1d(image, kernel, axis=0, mode="nearest")
    expected = ndimage.correlate1d(expected, kernel, axis=1, mode="nearest")
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_monotone_curve_is_the_identity_at_equal_logits_and_increasing_otherwise():
    u = jnp.linspace(0, 1, 50).reshape(50, 1)
    np.testing.assert_allclose(acq.monotone_curve(u, jnp.zeros((1, 8))), u, atol=1e-6)
    bent = np.asarray(acq.monotone_curve(u, jnp.asarray([[3.0, 0, -1, 0, 2, 0, 0, -2]])))
    assert np.all(np.diff(bent[:, 0]) >= 0) and bent[0, 0] == 0 and abs(bent[-1, 0] - 1) < 1e-6


def test_quantise_rounds_to_the_levels_and_passes_gradients_straight_through():
    u = jnp.asarray([0.0, 0.1, 0.26, 0.5, 0.74, 1.0])
    out = acq.quantise(u, jnp.asarray(5.0))
    np.testing.assert_allclose(out, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(jax.grad(lambda v: acq.quantise(v, 5.0).sum())(u), np.ones(6))


def test_no_gradient_reaches_the_bit_depth():
    """It is measured from the real set, not learned: a loss that rewards rounding error (what
    a discriminator does) would only drive it down."""
    camera = _strong_camera()
    graph, params = nnx.split(camera, nnx.Param)
    u = jax.random.uniform(jax.random.key(0), (2, 16, 16, 1)) * 2 - 1
    grads = jax.grad(lambda p: -((nnx.merge(graph, p)(u) - u) ** 2).sum())(params)
    assert float(nnx.to_pure_dict(grads)["bits_logit"]) == 0.0
    assert float(jnp.abs(nnx.to_pure_dict(grads)["log_blur"])) > 0


def _strong_camera() -> acq.Acquisition:
    camera = acq.Acquisition(1)
    camera.log_blur[...] = jnp.asarray(np.log(1.2), jnp.float32)
    camera.log_gain[...] = jnp.asarray([np.log(0.5)], jnp.float32)
    camera.offset[...] = jnp.asarray([0.2], jnp.float32)
    camera.vignette[...] = jnp.asarray(0.4, jnp.float32)
    camera.log_read[...] = jnp.asarray(np.log(0.03), jnp.float32)
    camera.resolution[...] = jnp.asarray(0.5, jnp.float32)
    camera.resolution_spread[...] = jnp.asarray(-9.0, jnp.float32)
    camera.bits_logit[...] = jnp.asarray(-0.3, jnp.float32)  # ~4 bits
    return camera


def test_a_strong_camera_keeps_the_shape_where_it_was():
    """Pixels never move: the bright shape's centroid stays within a pixel and its support
    within the blur's radius (plus the resolution loss's interpolation) of the original."""
    x = _shape()
    out = (np.asarray(_apply(_strong_camera(), x))[0, :, :, 0] + 1) / 2
    src = (np.asarray(x)[0, :, :, 0] + 1) / 2
    weight = lambda img: np.clip(img - np.median(img), 0, None)  # noqa: E731
    ys, xs = np.mgrid[0:16, 0:16]

    def centroid(img):
        w = weight(img)
        return np.array([(w * ys).sum(), (w * xs).sum()]) / w.sum()

    assert np.linalg.norm(centroid(out) - centroid(src)) < 1.0
    bright = out > (out.max() + np.median(out)) / 2
    rows, cols = np.nonzero(bright)
    margin = acq.BLUR_RADIUS
    assert rows.min() >= 3 - margin and rows.max() <= 8 + margin
    assert cols.min() >= 5 - margin and cols.max() <= 11 + margin


@pytest.mark.slow
def test_draws_depend_on_the_image_and_the_salt_only():
    x = jnp.concatenate([_shape(), _shape()[:, ::-1]])
    camera = _strong_camera()
    a, b = np.asarray(_apply(camera, x)), np.asarray(_apply(camera, x))
    np.testing.assert_array_equal(a, b)  # the same images, the same camera draw
    np.testing.assert_array_equal(np.asarray(_apply(camera, x[:1])), a[:1])  # batch-independent
    camera.salt = 1
    assert not np.array_equal(np.asarray(_apply(camera, x)), a)


@pytest.mark.slow
def test_gradients_reach_every_grey_stage():
    camera = _strong_camera()
    graph, params = nnx.split(camera, nnx.Param)
    x = _shape()
    grads = jax.jit(jax.grad(lambda p: (nnx.merge(graph, p)(x) ** 2).mean()))(params)
    flat = {k: float(jnp.abs(v).sum()) for k, v in nnx.to_pure_dict(grads).items()}
    for name in ("log_gain", "offset", "log_gamma", "vignette", "log_blur", "log_read",
                 "resolution"):  # fmt: skip
        assert flat[name] > 0, name


def test_resolution_weights_are_hat_functions_summing_to_one():
    grid = np.asarray(acq.RESOLUTIONS)
    for factor, expected in [(1.0, {1.0: 1.0}), (0.8, {0.875: 0.4, 0.75: 0.6}),
                             (0.5, {0.5: 1.0}), (1.3, {1.0: 1.0}), (0.1, {0.25: 1.0})]:  # fmt: skip
        w = np.asarray(acq.resolution_weights(jnp.asarray(factor)))
        want = np.array([expected.get(float(f), 0.0) for f in grid])
        np.testing.assert_allclose(w, want, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 12, 3), (35, 55, 1), (5, 3, 1)])
def test_resample_matrices_match_jax_image_resize(shape):
    # The reference: the resolution stage written with jax.image.resize, down with an
    # antialiasing filter, back up linearly, at every factor.
    u = np.random.default_rng(0).random(shape).astype(np.float32)
    h, w, c = shape
    for k, factor in enumerate(acq.RESOLUTIONS):
        small = (max(1, round(h * factor)), max(1, round(w * factor)), c)
        down = jax.image.resize(jnp.asarray(u), small, method="linear", antialias=True)
        want = jax.image.resize(down, shape, method="linear", antialias=False)
        rows, cols = acq.resample_matrices(h)[k], acq.resample_matrices(w)[k]
        got = np.einsum("ih,hwc,jw->ijc", rows, u, cols)
        np.testing.assert_allclose(got, np.asarray(want), atol=5e-6)
    np.testing.assert_array_equal(acq.resample_matrices(h)[0], np.eye(h))  # factor 1: u


def test_the_resolution_factor_learns_from_the_identity():
    """At the start (mean 1), the draws below 1 carry a gradient to the mean: a loss that wants
    a lower resolution pushes it down. (A categorical started on 1 gave it almost none.)"""
    camera = acq.Acquisition(1)
    graph, params = nnx.split(camera, nnx.Param)
    x = jnp.concatenate([_shape(), _shape()[:, ::-1], _shape()[:, :, ::-1], -_shape()])
    target = jax.image.resize(jax.image.resize(x, (4, 8, 8, 1), "linear"), x.shape, "linear")
    grads = jax.jit(jax.grad(lambda p: ((nnx.merge(graph, p)(x) - target) ** 2).mean()))(params)
    assert float(nnx.to_pure_dict(grads)["resolution"]) > 0  # descent lowers the factor


def test_describe_reads_the_parameters_back():
    graph, params = nnx.split(_strong_camera(), nnx.Param)
    camera = acq.describe(nnx.to_pure_dict(params))
    assert camera["blur_sigma_px"] == pytest.approx(1.2)
    assert camera["gain"] == [pytest.approx(0.5)]
    assert camera["noise_read"] == pytest.approx(0.03)
    assert camera["resolution"] == pytest.approx(0.5, abs=0.02)
    assert 3.5 < camera["bits"] < 4.5
    assert "blur sigma 1.20 px" in acq.summary_line(camera)


def test_levels_in_reads_the_storage_depth():
    rng = np.random.default_rng(0)
    u = rng.random((20, 8, 8, 1))
    four_bits = (np.round(u * 0.7 * 15) * 17).astype(np.uint8)  # codes 0, 17, ..., 170
    assert acq.levels_in(four_bits) == pytest.approx(16.0)
    stray = four_bits.copy()
    stray[0, 0, 0, 0] = 3  # one pixel of 1,280 off the grid
    assert acq.levels_in(stray) == 16.0
    # 64 levels stored in 8 bits: codes round(k * 255 / 63), gaps of 4 and 5
    assert acq.levels_in(np.round(np.round(u * 63) * 255 / 63).astype(np.uint8)) == 64.0
    assert acq.levels_in((u * 255).astype(np.uint8)) == 256.0
    assert acq.levels_in(np.full((2, 4, 4, 1), 9, np.uint8)) == 256.0  # one value: no grid
    assert acq.levels_in((np.round(u * 15) * 4369).astype(np.uint16)) == pytest.approx(16.0)


def test_bits_logit_for_gives_the_bit_depth_within_its_range():
    def bits(logit):
        return acq.MIN_BITS + (acq.MAX_BITS - acq.MIN_BITS) / (1.0 + np.exp(-logit))

    assert bits(acq.bits_logit_for(16.0)) == pytest.approx(4.0)
    assert bits(acq.bits_logit_for(32.0)) == pytest.approx(5.0)
    assert acq.bits_logit_for(256.0) == acq.START_BITS_LOGIT  # photographs: the identity start
    assert acq.bits_logit_for(65536.0) == acq.START_BITS_LOGIT
    assert bits(acq.bits_logit_for(2.0)) == pytest.approx(1.05)


@pytest.mark.parametrize("kind", ["acquisition", "acquisition+resnet"])
def test_training_starts_the_camera_at_the_real_sets_bit_depth(kind):
    from refinekit.refiners import fit_to_data

    class State:  # the two fields fit_to_data reads and replaces
        def __init__(self, refiner, ema):
            self.refiner, self.ema = refiner, ema

        def replace(self, **fields):
            return State(fields["refiner"], fields["ema"])

    config = TrainConfig(refiner=kind, preset="tiny")
    refiner, _ = build_models(config, 1, 0)
    ema, _ = build_models(config, 1, 0)
    params = State(nnx.state(refiner, nnx.Param), nnx.state(ema, nnx.Param))
    real = (np.random.default_rng(1).integers(0, 8, (6, 16, 16, 1)) * 255 / 7).round()
    state = fit_to_data(config, params, real.astype(np.uint8))  # 8 levels: 3 bits
    for fitted in (state.refiner, state.ema):
        pure = nnx.to_pure_dict(fitted)
        assert acq.describe(pure.get("camera", pure))["bits"] == pytest.approx(3.0, abs=1e-4)


def test_camera_then_resnet_regularises_against_the_camera_output():
    config = TrainConfig(refiner="acquisition+resnet", preset="tiny")
    refiner, _ = build_models(config, 1, 0)
    x = _shape()
    out, anchor = anchored(refiner, x)
    np.testing.assert_array_equal(np.asarray(anchor), np.asarray(refiner.camera(x)))
    assert out.shape == x.shape
    _, params = nnx.split(refiner, nnx.Param)
    assert camera_params(nnx.to_pure_dict(params)) is not None


def test_kind_defaults_apply_under_given_settings(tmp_path):
    from refinekit.training.runfolder import settings_for_run

    base = {"synthetic": "s", "real": "r", "out": str(tmp_path / "run")}
    config = settings_for_run({**base, "refiner": "acquisition"})
    for key, value in REFINER_DEFAULTS["acquisition"].items():
        assert getattr(config, key) == value
    assert settings_for_run({**base, "refiner": "acquisition", "steps": 7}).steps == 7
    assert settings_for_run(base).steps == TrainConfig().steps


def test_histogram_matching_gives_each_image_the_real_histogram():
    from refinekit.refiners import histogram

    rng = np.random.default_rng(0)
    real = (rng.beta(5, 2, (40, 8, 8, 1)) * 255).astype(np.uint8)
    table = histogram.fit(real)
    np.testing.assert_allclose(
        table[0], np.quantile(real / 255.0, (np.arange(256) + 0.5) / 256), atol=1e-6
    )
    module = histogram.HistogramMatch(1)
    x = _shape()
    module.quantiles[...] = jnp.asarray(table)
    out = (np.asarray(module(x)) + 1) / 2
    # Monotone within the image: the bright square stays brighter than the background.
    src = (np.asarray(x) + 1) / 2
    assert out[src > 0.5].min() >= out[src < 0.5].max()
    # Its quantiles are the real set's.
    levels = (np.arange(256) + 0.5) / 256
    np.testing.assert_allclose(np.sort(out.ravel()), np.interp(levels, levels, table[0]), atol=1e-5)


@pytest.mark.parametrize("kind", ["acquisition", "acquisition+resnet", "histogram"])
@pytest.mark.slow
def test_train_export_refine_with_each_kind(tmp_path, kind, monkeypatch, capsys):
    from refinekit.cli import main

    syn = write_images(tmp_path / "syn", 12, (16, 16), 0, smooth=True)
    real = write_images(tmp_path / "real", 12, (16, 16), 1, smooth=False)
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run), *TINY]
    args += ["--refiner", kind, "--checkpoint-every", "3", "--val-fraction", "0.2"]
    if kind != "histogram":  # training-free: its kind's defaults run no step
        args += ["--steps", "4", "--pretrain-disc-steps", "2", "--pretrain-refiner-steps", "2"]
    assert main(args) == 0
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    best = json.loads((run / "best.json").read_text())
    if kind == "histogram":  # training-free: one checkpoint, at step 0
        assert [r["step"] for r in scores] == [0] and best["step"] == 0
    else:
        assert all("blur_sigma_px" in record["camera"] for record in scores)
        assert best["camera"] == next(r["camera"] for r in scores if r["step"] == best["step"])
        assert "fitted camera: blur sigma" in (run / "index.html").read_text()
    assert main(["export", str(run), str(tmp_path / "m.npz")]) == 0
    from refinekit.inference.export_file import read_export

    _, _, header, _ = read_export(tmp_path / "m.npz")
    if kind != "histogram":
        assert header["camera"]["bits"] == pytest.approx(best["camera"]["bits"])
    assert (
        main(["refine", str(syn), str(tmp_path / "out"), "--model", str(tmp_path / "m.npz")]) == 0
    )
    assert len(list((tmp_path / "out").glob("*.png"))) == 12
    if kind == "acquisition":
        _refused_from_another_version(tmp_path, syn, run, monkeypatch, capsys)


def _refused_from_another_version(tmp_path, syn, run, monkeypatch, capsys):
    """A run or export whose camera parameters differ from this version's (one renamed) fails
    with the parameter named and exit 1, not an orbax traceback."""
    from refinekit.cli import main

    original = acq.Acquisition.__init__

    def renamed(self, *a, **k):
        original(self, *a, **k)
        self.newer_stage = acq._const(0.0)

    monkeypatch.setattr(acq.Acquisition, "__init__", renamed)
    capsys.readouterr()
    assert main(["refine", str(syn), str(tmp_path / "out1"), "--run", str(run)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(errors) == 1 and "only here: newer_stage" in errors[0], errors
    assert "another version" in errors[0] and "Traceback" not in errors[0]
    code = main(["refine", str(syn), str(tmp_path / "out2"), "--model", str(tmp_path / "m.npz")])
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert code in (1, 2) and len(errors) == 1 and "newer_stage" in errors[0], errors
