"""The training-free kinds `fda` and `colour`: their fits and outputs against NumPy, pixels kept
where they were, and the CLI path train -> refine --run -> export -> refine --model."""

import json

import imageio.v3 as iio
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY, write_images
from refinekit.config import TrainConfig
from refinekit.nn.models import build_models
from refinekit.presets import REFINER_DEFAULTS, REFINERS
from refinekit.refiners import TRAINING_FREE, colour, fda


def _real(shape, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.beta(5, 4, shape) * 255).astype(np.uint8)


def _synthetic(shape, seed=0):
    """Mid-grey renders with a bright square and mild noise: refined, they stay in range."""
    rng = np.random.default_rng(seed)
    u = 0.45 + 0.08 * rng.random(shape)
    u[:, 3:9, 5:12] += 0.12
    return u.astype(np.float32)


def _unit(x):
    return x / np.maximum(np.abs(x), 1e-12)


def test_kinds_are_registered_like_histogram():
    for kind in ("fda", "colour"):
        assert kind in REFINERS and kind in TRAINING_FREE
        assert REFINER_DEFAULTS[kind] == REFINER_DEFAULTS["histogram"]
        assert REFINER_DEFAULTS[kind]["steps"] == 0


# ---------------------------------------------------------------------------------------------
# colour


@pytest.mark.parametrize("channels", [1, 3])
def test_colour_gives_each_image_the_real_mean_and_std(channels):
    real = _real((30, 12, 10, channels))
    mean, std = colour.fit(real)
    values = real.reshape(-1, channels) / 255.0
    np.testing.assert_allclose(mean, values.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(std, values.std(axis=0), atol=1e-6)

    syn = _synthetic((4, 12, 10, channels))
    syn[..., -1] *= 0.7  # another colour cast per channel
    module = colour.ColourTransfer(channels)
    module.mean[...], module.std[...] = jnp.asarray(mean), jnp.asarray(std)
    out = (np.asarray(module(jnp.asarray(syn * 2 - 1))) + 1) / 2
    assert 0 < out.min() and out.max() < 1  # unclipped here: the moments are exact
    np.testing.assert_allclose(out.mean(axis=(1, 2)), np.tile(mean, (4, 1)), atol=1e-5)
    np.testing.assert_allclose(out.std(axis=(1, 2)), np.tile(std, (4, 1)), atol=1e-5)
    # An increasing map per image and channel: every pixel keeps its rank, no edge moves.
    for i in range(4):
        for c in range(channels):
            order = np.argsort(syn[i, ..., c], axis=None, kind="stable")
            assert np.all(np.diff(out[i, ..., c].ravel()[order]) >= -1e-6)


def test_colour_sets_a_flat_channel_to_the_real_mean_and_clips():
    module = colour.ColourTransfer(1)
    module.mean[...], module.std[...] = jnp.asarray([0.3]), jnp.asarray([0.5])
    flat = np.full((1, 6, 6, 1), 0.8, np.float32)
    out = (np.asarray(module(jnp.asarray(flat * 2 - 1))) + 1) / 2
    np.testing.assert_allclose(out, 0.3, atol=1e-3)  # float32 rounding over MIN_STD
    ramp = np.linspace(0, 1, 36, dtype=np.float32).reshape(1, 6, 6, 1)
    out = (np.asarray(module(jnp.asarray(ramp * 2 - 1))) + 1) / 2
    assert out.min() == 0.0 and out.max() == 1.0  # a std of 0.5 pushes the ends out of range


# ---------------------------------------------------------------------------------------------
# fda


def test_fda_band_half_width_follows_beta_with_one_harmonic_at_least():
    assert fda.half_width((16, 16)) == 1
    assert fda.half_width((64, 80)) == int(np.floor(fda.BETA * 64)) == 3
    assert fda.half_width((512, 1024)) == 25
    rows, table_rows = fda.window(16, 1)
    assert list(rows) == [15, 0, 1] and list(table_rows) == [0, 1, 2]
    assert list(fda.window(2, 2)[0]) == [1, 0]  # frequencies -1 and 0 only


@pytest.mark.parametrize("channels", [1, 3])
def test_fda_sets_the_low_band_amplitude_and_keeps_the_phase(channels):
    h, w = 20, 24
    real = _real((25, h, w, channels))
    b = fda.half_width((h, w))
    table = fda.fit(real, b)
    spectra = np.fft.fftshift(np.fft.fft2(real / 255.0, axes=(1, 2)), axes=(1, 2))
    centre = np.abs(spectra).mean(axis=0)[h // 2 - b : h // 2 + b + 1, w // 2 - b : w // 2 + b + 1]
    np.testing.assert_allclose(table, np.moveaxis(centre, -1, 0) / (h * w), rtol=1e-5, atol=1e-7)

    syn = _synthetic((3, h, w, channels))
    module = fda.FourierAdapt(channels, b)
    module.amplitude[...] = jnp.asarray(table)
    out = (np.asarray(module(jnp.asarray(syn * 2 - 1))) + 1) / 2
    assert 0 < out.min() and out.max() < 1  # unclipped here: the spectrum is exact
    source = np.fft.fftshift(np.fft.fft2(syn, axes=(1, 2)), axes=(1, 2))
    refined = np.fft.fftshift(np.fft.fft2(out, axes=(1, 2)), axes=(1, 2))
    band = (slice(None), slice(h // 2 - b, h // 2 + b + 1), slice(w // 2 - b, w // 2 + b + 1))
    np.testing.assert_allclose(
        np.abs(refined[band]), np.broadcast_to(centre, (3, *centre.shape)), atol=2e-3
    )
    np.testing.assert_allclose(_unit(refined[band]), _unit(source[band]), atol=1e-4)  # phase
    # Everything outside the band is the input's: the change is a smooth field, no edge moves.
    outside = np.ones((h, w), bool)
    outside[band[1], band[2]] = False
    np.testing.assert_allclose(refined[:, outside], source[:, outside], atol=2e-3)


def test_fda_refines_another_size_over_the_same_cycles_per_image():
    real = _real((10, 16, 16, 1))
    table = fda.fit(real, 1)
    module = fda.FourierAdapt(1, 1)
    module.amplitude[...] = jnp.asarray(table)
    syn = _synthetic((1, 12, 30, 1))
    out = (np.asarray(module(jnp.asarray(syn * 2 - 1))) + 1) / 2
    spectrum = np.fft.fft2(out[0, ..., 0])
    rows, table_rows = fda.window(12, 1)
    cols, table_cols = fda.window(30, 1)
    np.testing.assert_allclose(
        np.abs(spectrum[np.ix_(rows, cols)]),
        table[0][np.ix_(table_rows, table_cols)] * 12 * 30,
        atol=2e-3,
    )
    # the mean is the real set's (the DC term is amplitude / pixel count)
    assert out.mean() == pytest.approx(real.mean() / 255.0, abs=1e-4)


@pytest.mark.parametrize("kind", ["fda", "colour"])
def test_fit_to_data_fills_the_parameters_and_output_is_deterministic(kind):
    from flax import nnx

    from refinekit.refiners import fit_to_data

    config = TrainConfig(refiner=kind, preset="tiny", size=(16, 16), channels=1)
    refiner, _ = build_models(config, 1, 0)

    class State:  # what fit_to_data needs of a train state
        def __init__(self, refiner, ema):
            self.refiner, self.ema = refiner, ema

        def replace(self, **changes):
            return State(changes.get("refiner", self.refiner), changes.get("ema", self.ema))

    _, params = nnx.split(refiner, nnx.Param)
    real = _real((8, 16, 16, 1))
    state = fit_to_data(config, State(params, nnx.clone(params)), real)
    pure = nnx.to_pure_dict(state.ema)
    if kind == "colour":
        np.testing.assert_allclose(pure["mean"], [real.mean() / 255.0], rtol=1e-6)
    else:
        np.testing.assert_allclose(pure["amplitude"], fda.fit(real, 1), rtol=1e-6)
    graph, _ = nnx.split(refiner, nnx.Param)
    model = nnx.merge(graph, state.ema)
    x = jnp.asarray(_synthetic((2, 16, 16, 1)) * 2 - 1)
    np.testing.assert_array_equal(np.asarray(model(x)), np.asarray(model(x)))


# ---------------------------------------------------------------------------------------------
# The CLI: train (no step, one checkpoint), refine --run, export, refine --model, gap-report


def _pixels(folder):
    return {p.name: iio.imread(p).astype(np.float64) / 255.0 for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("kind", ["fda", "colour"])
@pytest.mark.slow
def test_train_refine_export_round_trip(tmp_path, kind):
    from refinekit.cli import main

    syn = write_images(tmp_path / "syn", 12, (16, 16, 3), 0, smooth=True)
    real = write_images(tmp_path / "real", 12, (16, 16, 3), 1, smooth=False)
    (syn / "img_000.json").write_text('{"label": 1}\n')
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run), *TINY]
    assert main([*args, "--refiner", kind, "--val-fraction", "0.2"]) == 0
    scores = [json.loads(line) for line in (run / "scores.jsonl").read_text().splitlines()]
    assert [r["step"] for r in scores] == [0] and scores[0]["phase"] == "fitted"
    assert json.loads((run / "best.json").read_text())["step"] == 0
    assert (run / "index.html").is_file()
    assert main(["refine", str(syn), str(tmp_path / "by_run"), "--run", str(run)]) == 0
    assert main(["export", str(run), str(tmp_path / "m.npz")]) == 0
    assert (
        main(["refine", str(syn), str(tmp_path / "by_model"), "--model", str(tmp_path / "m.npz")])
        == 0
    )
    by_run, by_model = _pixels(tmp_path / "by_run"), _pixels(tmp_path / "by_model")
    assert by_run.keys() == _pixels(syn).keys()
    assert all(np.array_equal(by_run[n], by_model[n]) for n in by_run)
    assert (tmp_path / "by_run" / "img_000.json").read_text() == '{"label": 1}\n'
    source = _pixels(syn)
    assert all(by_run[n].shape == source[n].shape for n in source)
    assert any(not np.array_equal(by_run[n], source[n]) for n in source)
    # The training split's real images decide the numbers; the held-out ones are few.
    values = np.stack(list(_pixels(real).values())).reshape(-1, 3)
    refined = np.stack(list(by_run.values()))
    if kind == "colour":  # each image's moments are the real set's (to 8-bit rounding, clipping)
        np.testing.assert_allclose(
            refined.mean(axis=(1, 2)), np.tile(values.mean(0), (12, 1)), atol=0.03
        )
        np.testing.assert_allclose(
            refined.std(axis=(1, 2)), np.tile(values.std(0), (12, 1)), atol=0.03
        )
    else:  # the DC term: each image's mean is the real set's
        np.testing.assert_allclose(
            refined.mean(axis=(1, 2)), np.tile(values.mean(0), (12, 1)), atol=0.03
        )


@pytest.mark.slow
def test_gap_report_reads_a_training_free_run(tmp_path):
    from refinekit.cli import main

    syn = write_images(tmp_path / "syn", 20, (16, 16), 0, smooth=True)
    real = write_images(tmp_path / "real", 20, (16, 16), 1, smooth=False)
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run), *TINY]
    assert main([*args, "--refiner", "colour"]) == 0
    report = tmp_path / "g.json"
    assert (
        main(
            [
                "gap-report",
                "--real",
                str(real),
                "--synthetic",
                str(syn),
                "--run",
                str(run),
                "--bootstrap",
                "20",
                "--json",
                str(report),
            ]
        )
        == 0
    )
    refined = json.loads(report.read_text())["sets"]["refined"]
    assert refined["source"] == "run" and refined["model"]["step"] == 0


def test_bench_refuses_a_training_step_of_a_training_free_kind_and_times_its_refine(capsys):
    from refinekit.bench import bench_config, train_step_flops
    from refinekit.cli import main

    size = ["--size", "8", "8", "--batch-size", "4", "--preset", "tiny", "--repeats", "1"]
    assert main(["bench", "--mode", "train", "--refiner", "fda", *size]) == 2
    assert "a training-free kind has no training step" in capsys.readouterr().err
    assert main(["bench", "--mode", "refine", "--refiner", "colour", *size, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["refiner"] == "colour" and result["gflop_per_step"] == 0.0
    # A kind's own settings apply, as in train; a camera model's step counts no refiner FLOPs.
    camera = bench_config("acquisition", preset="tiny", size=(8, 8), channels=1)
    assert (
        camera.lambda_reg == 0.0
        and camera.lr_refiner == REFINER_DEFAULTS["acquisition"]["lr_refiner"]
    )
    resnet = bench_config("resnet", preset="tiny", size=(8, 8), channels=1)
    assert 0 < train_step_flops(camera, 1, (8, 8)) < train_step_flops(resnet, 1, (8, 8))
