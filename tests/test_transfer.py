"""`refinekit train --init-from`: what is carried over from another run or an export, what is
reset and said so, the frozen parts, the fine-tune schedule, resume, and bad paths."""

import json

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from conftest import TINY, write_images
from refinekit import TrainConfig, train
from refinekit.cli import main
from refinekit.errors import ConfigError
from refinekit.presets import FINE_TUNE_DEFAULTS, REFINER_DEFAULTS, kind_defaults
from refinekit.training import checkpoint, selection
from refinekit.training.runfolder import settings_for_run
from refinekit.training.state import make_mesh
from refinekit.training.steps import StepFunctions

# The source's schedule, and a fine-tune run that stops at step 0 (its one checkpoint then
# holds exactly what it started from).
SOURCE = ["--steps", "6", "--pretrain-refiner-steps", "6", "--pretrain-disc-steps", "4"]
AT_ZERO = ["--steps", "0", "--pretrain-disc-steps", "0"]
CLASSIFIER = ["--classifier-steps", "20"]


def _classes(folder, names, shape, seed):
    """Class subfolders of smooth images, each class at its own brightness (easy to classify)."""
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        (folder / name).mkdir(parents=True)
        for j in range(12):
            level = 0.2 + 0.6 * i / max(len(names) - 1, 1)
            image = np.clip(level + 0.1 * rng.standard_normal(shape), 0, 1)
            iio.imwrite(
                folder / name / f"{name}_{j:02d}.png", np.round(image * 255).astype(np.uint8)
            )
    return folder


def _args(syn, real, out, *extra):
    return ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(out), *TINY, *extra]


def _state(run, step=None):
    """A run's config and the state of its checkpoint `step` (default: the latest)."""
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()), saved=True)
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    step = checkpoint.steps(run)[-1] if step is None else step
    return config, jax.device_get(checkpoint.restore(run, step, fns.init_state()))


def _equal(a, b):
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(leaves_a, leaves_b, strict=True)
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny gray run over classes a, b (with its label classifier), and its best step."""
    root = tmp_path_factory.mktemp("source")
    syn = _classes(root / "syn", ["a", "b"], (16, 16), 0)
    real = write_images(root / "real", 24, (16, 16), 1, smooth=False)
    run = root / "run"
    assert main(_args(syn, real, run, *SOURCE, *CLASSIFIER)) == 0
    step = selection.resolve(run, None).step
    return run, step


def test_the_fine_tune_schedule_sits_under_what_is_given(tmp_path):
    folders = {"synthetic": "s", "real": "r", "out": str(tmp_path / "run"), "init_from": "x"}
    folders["refiner"] = "resnet"  # without it, the source's kind (read from the source)
    config = settings_for_run(folders)
    for name, value in FINE_TUNE_DEFAULTS.items():
        assert getattr(config, name) == value
    assert settings_for_run({**folders, "steps": 50}).steps == 50
    assert settings_for_run({**folders, "refiner": "histogram"}).total_steps == 0
    assert settings_for_run({**folders, "init_from": ""}).steps == TrainConfig.steps
    assert (
        kind_defaults("acquisition", True)["lr_refiner"]
        == REFINER_DEFAULTS["acquisition"]["lr_refiner"]
    )


def test_freezing_every_discriminator_layer_is_refused():
    TrainConfig(refiner="resnet", preset="tiny", freeze_disc_layers=4)  # tiny has 5 convolutions
    with pytest.raises(ConfigError, match="--freeze-disc-layers: expected fewer than .* 5"):
        TrainConfig(refiner="resnet", preset="tiny", freeze_disc_layers=5)


@pytest.mark.parametrize(
    "where", ["missing", "folder", "text"], ids=["missing", "not-a-run", "not-an-export"]
)
def test_a_bad_init_from_is_one_line_and_exit_2(gray16, tmp_path, capsys, where):
    syn, real = gray16
    bad = {"missing": tmp_path / "nope", "folder": tmp_path, "text": tmp_path / "notes.npz"}[where]
    if where == "text":
        bad.write_text("not an export")
    out = tmp_path / "run"
    assert main(_args(syn, real, out, "--init-from", str(bad))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: --init-from {bad}"), err
    assert not out.exists()  # checked before the run folder is made


@pytest.mark.slow
def test_a_run_of_the_same_shape_starts_from_its_weights(source, tmp_path, capsys):
    run, step = source
    syn = _classes(tmp_path / "syn", ["a", "b"], (16, 16), 5)  # a new data set, same classes
    real = write_images(tmp_path / "real", 20, (16, 16), 6, smooth=False)
    out = tmp_path / "ft"
    assert main(_args(syn, real, out, "--init-from", str(run), *AT_ZERO, *CLASSIFIER)) == 0
    err = capsys.readouterr().err
    assert f"--init-from: refiner kept (from {run} step {step}" in err
    assert f"--init-from: discriminator kept (from {run} step {step})" in err
    assert "--init-from: label classifier kept" in err and "its own phase is skipped" in err
    assert "label classifier trained" not in err
    config, state = _state(out, 0)
    _, origin = _state(run, step)
    assert _equal(state.refiner, origin.ema) and _equal(state.ema, origin.ema)
    assert _equal(state.disc, origin.disc)
    assert _equal(state.extras["classifier"], origin.extras["classifier"])
    assert int(state.opt_disc[0].count) == 0  # optimizers start afresh
    record = config.extra["init_from"]
    saved = json.loads((run / "config.json").read_text())["extra"]["data"]
    assert record["path"] == str(run) and record["step"] == step and record["kind"] == "run"
    assert record["refiner"] == "resnet"
    assert record["data"] == {k: saved[k]["fingerprint"] for k in ("synthetic", "real")}
    assert record["parts"] == {
        "refiner": "kept",
        "discriminator": "kept",
        "label classifier": "kept",
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "channels, classes, expected",
    [
        (
            3,
            ["a", "b"],
            [
                "refiner reset (the source has 1 channel, this run 3",
                "discriminator reset (the source has 1 channel, this run 3)",
                "label classifier reset (trained in its own phase; the source has 1 channel",
            ],
        ),
        (
            1,
            ["c", "d", "e"],
            [
                "refiner kept",
                "discriminator kept",
                "label classifier reset (trained in its own phase; the classes differ: a, b -> "
                "c, d, e)",
            ],
        ),
    ],
    ids=["rgb", "other-classes"],
)
def test_parts_that_no_longer_fit_are_reset_and_said_so(
    source, tmp_path, capsys, channels, classes, expected
):
    run, _ = source
    shape = (16, 16, 3) if channels == 3 else (16, 16)
    syn = _classes(tmp_path / "syn", classes, shape, 7)
    real = write_images(tmp_path / "real", 20, shape, 8, smooth=False)
    out = tmp_path / "ft"
    assert main(_args(syn, real, out, "--init-from", str(run), *AT_ZERO, *CLASSIFIER)) == 0
    err = capsys.readouterr().err
    for line in expected:
        assert f"--init-from: {line}" in err, err
    assert "label classifier trained" in err  # its own phase ran
    if channels == 3:  # a reset ResNet with no pretraining: the warning says what to give
        assert "--pretrain-refiner-steps 0 it starts the adversarial phase" in err
    parts = json.loads((out / "config.json").read_text())["extra"]["init_from"]["parts"]
    assert parts["label classifier"] == "reset"


@pytest.mark.slow
def test_an_init_from_run_resumes_bit_identically(source, gray16, tmp_path):
    run, _ = source
    syn, real = gray16
    straight, split = tmp_path / "straight", tmp_path / "split"
    start = ["--init-from", str(run), "--pretrain-disc-steps", "2", "--checkpoint-every", "3"]
    assert main(_args(syn, real, straight, *start, "--steps", "6")) == 0
    assert main(_args(syn, real, split, *start, "--steps", "3")) == 0  # stop at step 5 ...
    assert main(_args(syn, real, split, *start, "--steps", "6")) == 0  # ... resume to 8
    (_, a), (_, b) = _state(straight), _state(split)
    assert int(a.step) == int(b.step) == 8
    assert _equal(a, b)
    saved = [json.loads((r / "config.json").read_text())["extra"] for r in (straight, split)]
    assert saved[0]["init_from"] == saved[1]["init_from"]
    assert saved[1]["init_from"]["step"] == source[1]


@pytest.mark.slow
def test_frozen_parts_do_not_change_and_nothing_recompiles(source, gray16, tmp_path):
    run, step = source
    syn, real = gray16
    out = tmp_path / "ft"
    settings = {
        "synthetic": str(syn),
        "real": str(real),
        "out": str(out),
        "init_from": str(run),
        "preset": "tiny",
        "batch_size": 4,
        "pretrain_disc_steps": 2,
        "steps": 8,
        "freeze_refiner_steps": 4,
        "freeze_disc_layers": 2,
        "checkpoint_every": 2,
        "keep": 10,
        "log_every": 2,
        "sample_every": 10,
    }
    result = train(settings)  # no refiner given: the source's kind, resnet, not auto
    assert json.loads((out / "config.json").read_text())["refiner"] == "resnet"
    assert result.step == 10
    assert result.trace_counts["adversarial"] == 1  # one program, frozen or not
    _, origin = _state(run, step)
    states = {s: _state(out, s)[1] for s in (2, 4, 6, 8, 10)}
    # Adversarial steps 0-3 are global steps 2-5: the refiner and its optimizer stay as they
    # started until the checkpoint at 6, then move.
    for s in (2, 4, 6):
        assert _equal(states[s].refiner, origin.ema), s
        assert _equal(states[s].opt_refiner, states[2].opt_refiner), s
    assert not _equal(states[8].refiner, origin.ema)
    # The first two convolutions never move; the others do from the first update.
    for s in states:
        for i in (0, 1):
            assert _equal(states[s].disc["convs"][i], origin.disc["convs"][i]), (s, i)
    assert not _equal(states[2].disc["convs"][2], origin.disc["convs"][2])


@pytest.mark.slow
def test_an_export_starts_the_refiner_and_resets_the_rest(source, gray16, tmp_path, capsys):
    run, step = source
    syn, real = gray16
    exported = tmp_path / "refiner.npz"
    assert main(["export", str(run), str(exported)]) == 0
    out = tmp_path / "ft"
    assert main(_args(syn, real, out, "--init-from", str(exported), *AT_ZERO)) == 0
    err = capsys.readouterr().err
    assert f"--init-from: refiner kept (from export {exported}" in err
    assert "--init-from: discriminator reset (an export holds the refiner only)" in err
    config, state = _state(out, 0)
    _, origin = _state(run, step)
    assert _equal(state.refiner, origin.ema) and _equal(state.ema, origin.ema)
    assert not _equal(state.disc, origin.disc)
    record = config.extra["init_from"]
    assert record["kind"] == "export" and record["step"] == step and len(record["sha256"]) == 64
