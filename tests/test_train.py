"""`refinekit train` end to end on real files: run folder, resume, compile-once, errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import imageio.v3 as iio
import jax
import numpy as np
import pytest

from conftest import TINY, write_images
from helpers import _final_state
from refinekit import TrainConfig, train
from refinekit.cli import main
from refinekit.training import checkpoint
from refinekit.training.state import make_mesh
from refinekit.training.steps import StepFunctions

pytestmark = pytest.mark.slow  # end-to-end training runs

SHORT = ["--pretrain-refiner-steps", "6", "--pretrain-disc-steps", "4"]


def _args(syn, real, out, steps, *extra):
    return [
        "train",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--out",
        str(out),
        "--steps",
        str(steps),
        *TINY,
        *SHORT,
        *extra,
    ]


def test_gray_16x16_run_writes_the_whole_run_folder(gray16, tmp_path, capsys):
    syn, real = gray16
    run = tmp_path / "run"
    assert main(_args(syn, real, run, 20)) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["size"] == [16, 16] and config["channels"] == 1
    assert config["extra"]["data"]["synthetic"]["images"] == 24
    assert config["extra"]["data"]["real"]["fingerprint"]
    assert "jax" in config["extra"]["versions"]
    assert checkpoint.steps(run)[-1] == 30  # 6 + 4 pretraining + 20 adversarial
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    phases = {r["phase"] for r in records}
    assert phases == {"pretrain_refiner", "pretrain_disc", "adversarial"}
    adversarial = [r for r in records if r["phase"] == "adversarial"][-1]
    for key in (
        "refiner_adversarial",
        "self_regularisation",
        "disc_real",
        "disc_refined",
        "disc_history",
        "disc_acc_real",
        "disc_acc_refined",
        "mean_abs_change",
        "images_per_second",
    ):
        assert np.isfinite(adversarial[key]), key
    samples = sorted((run / "samples").glob("step_*.png"))
    assert [p.name for p in samples][:2] == ["step_0000000.png", "step_0000010.png"]
    grid = iio.imread(samples[-1])
    assert grid.ndim == 3 and grid.shape[0] >= 4 * 64  # 4 rows of >= 64 px cells
    err = capsys.readouterr().err
    assert "patch grid" in err and "receptive" not in err or "sees" in err


def test_rgb_32x32_run(tmp_path):
    syn = write_images(tmp_path / "syn", 12, (32, 32, 3), 2, smooth=True)
    real = write_images(tmp_path / "real", 10, (32, 32, 3), 3, smooth=False, ext=".jpg")
    run = tmp_path / "run"
    assert main(_args(syn, real, run, 10)) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["size"] == [32, 32] and config["channels"] == 3
    step, state = _final_state(run)
    assert step == 20 and state.buffer.images.shape[1:] == (32, 32, 3)


@pytest.mark.parametrize(
    "augment",
    [
        [],
        ["--augment", "ada", "--augment-policy", "color,translation,cutout,noise"],
        ["--lr-pretrain-refiner", "1e-3", "--lambda-label-pretrain", "0"],
    ],
)
def test_resume_is_bit_identical_to_an_uninterrupted_run(gray16, tmp_path, augment):
    syn, real = gray16
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert main(_args(syn, real, straight, 12, *augment)) == 0
    assert main(_args(syn, real, split, 6, *augment)) == 0  # stop at the half ...
    assert main(_args(syn, real, split, 12, *augment)) == 0  # ... and resume to the end
    (s1, a), (s2, b) = _final_state(straight), _final_state(split)
    assert s1 == s2 == 22
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(a.buffer.count) > 0


def test_each_phase_compiles_once_over_a_whole_run(gray16, tmp_path):
    syn, _ = gray16
    # 40 real images: enough for a validation split (at least 32), so "validate" runs too.
    real = write_images(tmp_path / "real40", 40, (16, 16), 1, smooth=False)
    config = TrainConfig(
        refiner="resnet",
        synthetic=str(syn),
        real=str(real),
        out=str(tmp_path / "run"),
        preset="tiny",
        batch_size=4,
        steps=15,
        pretrain_refiner_steps=5,
        pretrain_disc_steps=5,
        log_every=3,
        checkpoint_every=7,
        sample_every=4,
    )
    result = train(config)
    assert result.step == 25
    assert result.trace_counts == {
        "pretrain_refiner": 1,
        "pretrain_disc": 1,
        "adversarial": 1,
        "refine": 1,
        "validate": 1,  # the held-out synthetic images, refined at every checkpoint
    }


def test_history_buffer_fills_during_training(gray16, tmp_path):
    syn, real = gray16
    # batch 4 -> 2 images per D update; capacity 8 -> full after 4 D updates (pretrain 4 + adversarial)
    run = tmp_path / "run"
    assert main(_args(syn, real, run, 6, "--buffer-size", "8")) == 0
    _, state = _final_state(run)
    assert int(state.buffer.count) == 8
    assert np.all(np.abs(np.asarray(state.buffer.images)).reshape(8, -1).max(axis=1) > 0)


def test_steps_per_call_gives_the_same_run(gray16, tmp_path):
    syn, real = gray16
    a, b = tmp_path / "a", tmp_path / "b"
    # 2 steps per call (each phase's program unrolled twice: compile time grows with it); 9
    # adversarial steps leave one to the single-step program.
    assert main(_args(syn, real, a, 9)) == 0
    assert main(_args(syn, real, b, 9, "--steps-per-call", "2")) == 0
    (_, x), (_, y) = _final_state(a), _final_state(b)
    for u, v in zip(jax.tree.leaves(x), jax.tree.leaves(y), strict=True):
        np.testing.assert_allclose(
            np.asarray(u, np.float64), np.asarray(v, np.float64), rtol=1e-4, atol=1e-5
        )


def test_config_file_toml_and_flag_override(gray16, tmp_path):
    syn, real = gray16
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'synthetic = "{syn}"\nreal = "{real}"\npreset = "tiny"\nbatch-size = 4\nsteps = 50\n'
        "pretrain_refiner_steps = 2\npretrain_disc_steps = 2\nsample_every = 3\n"
    )
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(run), "--steps", "3"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["steps"] == 3 and saved["sample_every"] == 3 and saved["batch_size"] == 4


def _one_line_error(capsys, code, expected_code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in err, err


def test_user_errors_are_one_line_with_exit_code_2(gray16, tmp_path, capsys):
    syn, real = gray16
    out = tmp_path / "run"
    _one_line_error(
        capsys, main(_args(tmp_path / "nope", real, out, 2)), 2, "--synthetic", "no such folder"
    )
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, main(_args(tmp_path / "empty", real, out, 2)), 2, "no image files")
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_text("not an image")
    _one_line_error(capsys, main(_args(junk, real, out, 2)), 2, "could be decoded", "a.png")
    mixed = write_images(tmp_path / "mixed", 2, (16, 16), 0, smooth=True)
    iio.imwrite(mixed / "big.png", np.zeros((20, 24), np.uint8))
    _one_line_error(capsys, main(_args(mixed, real, out, 2)), 2, "--size")
    assert main(_args(mixed, real, out, 2, "--size", "16", "16")) == 0
    capsys.readouterr()
    _one_line_error(
        capsys,
        main(_args(mixed, real, out, 4, "--size", "16", "16", "--lambda-reg", "9")),
        2,
        "lambda_reg",
        str(out),
    )
    _one_line_error(
        capsys, main(_args(syn, real, tmp_path / "r2", 2, "--batch-size", "3")), 2, "--batch-size"
    )
    _one_line_error(
        capsys, main(["train", "--real", str(real), "--out", str(out)]), 2, "--synthetic"
    )


def test_undecodable_files_are_skipped_with_names_unless_strict(gray16, tmp_path, capsys):
    syn, real = gray16
    (syn / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    assert main(_args(syn, real, tmp_path / "run", 2)) == 0
    assert "skipped 1 undecodable" in capsys.readouterr().err
    _one_line_error(
        capsys,
        main(_args(syn, real, tmp_path / "run2", 2, "--strict")),
        2,
        "broken.png",
        "--strict",
    )


def test_non_finite_loss_stops_with_the_step(gray16, tmp_path, capsys):
    syn, real = gray16
    code = main(_args(syn, real, tmp_path / "run", 20, "--lr-refiner", "1e38", "--lr-disc", "1e38"))
    _one_line_error(capsys, code, 1, "NaN or infinite at step")


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(gray16, tmp_path):
    syn, real = gray16
    run = tmp_path / "run"
    args = _args(syn, real, run, 100000, "--checkpoint-every", "100000")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "refinekit", *args], stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and not (run / "metrics.jsonl").exists()
        or not (run / "metrics.jsonl").read_text()
    ):
        time.sleep(0.2)
        if proc.poll() is not None:
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "resume" in err and "Traceback" not in err
    saved = checkpoint.steps(run)
    assert saved and saved[-1] > 0


def test_library_train_stops_on_its_callback_and_installs_no_signal_handler(gray16, tmp_path):
    """train() asks should_stop after each call, saves, raises Interrupted; signals stay the
    caller's (a library must not take SIGINT/SIGTERM from its host program)."""
    from refinekit.stop import Interrupted

    syn, real = gray16
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    seen: dict[str, object] = {}
    calls = iter(range(1000))

    def should_stop() -> bool:
        seen.update({sig.name: signal.getsignal(sig) for sig in before})
        return next(calls) >= 3  # the fourth call stops

    config = TrainConfig(
        refiner="resnet",
        synthetic=str(syn),
        real=str(real),
        out=str(tmp_path / "run"),
        preset="tiny",
        batch_size=4,
        steps=50,
        pretrain_refiner_steps=2,
        pretrain_disc_steps=2,
        checkpoint_every=1000,
        sample_every=1000,
        log_every=1000,
    )
    with pytest.raises(Interrupted, match="stopped at step 4"):
        train(config, should_stop=should_stop)
    assert checkpoint.steps(tmp_path / "run") == [4]
    assert seen == {sig.name: handler for sig, handler in before.items()}


def test_ada_moves_p_and_logs_it(gray16, tmp_path):
    syn, real = gray16
    run = tmp_path / "run"
    # a tiny real set is memorised at once: sign(D(real)) > 0.6 pushes p up from 0
    ada = ["--augment", "ada", "--lr-disc", "3e-3", "--r1-gamma", "0"]  # R1 off: memorised at once
    assert main(_args(syn, real, run, 24, *ada)) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    adversarial = [r for r in records if r["phase"] == "adversarial"]
    assert all(0.0 <= r["augment_p"] <= 1.0 for r in adversarial)
    assert adversarial[-1]["augment_p"] > 0.0


def test_the_step_loop_makes_no_host_transfer(gray16, tmp_path, monkeypatch):
    """Steps run under jax.transfer_guard("disallow"): data stays on the device between calls.

    Every training test passes through the guard; here we show it is live by leaving the data
    sets on the host, which would upload a batch every step: the guard stops it.
    """
    syn, real = gray16
    config = TrainConfig(
        refiner="resnet",
        synthetic=str(syn),
        real=str(real),
        out=str(tmp_path / "run"),
        preset="tiny",
        batch_size=4,
        steps=4,
        pretrain_refiner_steps=0,
        pretrain_disc_steps=0,
        log_every=2,
    )
    assert train(config).step == 4
    real_put = jax.device_put
    monkeypatch.setattr(
        jax,
        "device_put",
        lambda x, *a, **k: x if type(x).__name__ == "DeviceData" else real_put(x, *a, **k),
    )
    with pytest.raises(Exception, match="(?i)disallowed"):
        train(config.replace(out=str(tmp_path / "run2")))


def test_progress_bar_on_a_terminal(gray16, tmp_path, monkeypatch, capsys):
    import refinekit.cli.train_progress as cli_train

    monkeypatch.setattr(cli_train, "interactive", lambda: True)
    syn, real = gray16
    assert main(_args(syn, real, tmp_path / "run", 4, "--log-every", "2")) == 0
    err = capsys.readouterr().err
    assert "adversarial" in err and re.search(r"\d+/14", err) and "img/s" in err, err[-2000:]


def test_augment_auto_is_ada_below_100_real_images_and_none_from_100(tmp_path, capsys):
    syn = write_images(tmp_path / "syn", 12, (16, 16), 0, smooth=True)
    for count, expected in ((99, "ada"), (100, "none")):
        real = write_images(tmp_path / f"real{count}", count, (16, 16), 1, smooth=False)
        run = tmp_path / f"run{count}"
        assert main(_args(syn, real, run, 2)) == 0
        err = capsys.readouterr().err
        assert json.loads((run / "config.json").read_text())["augment"] == expected
        said = "discriminator augmentation: ada (only 99 real images" in err
        assert said == (expected == "ada")
        # resuming keeps what auto chose, with no flag given
        assert main(_args(syn, real, run, 4)) == 0
        capsys.readouterr()
        assert json.loads((run / "config.json").read_text())["augment"] == expected


def test_training_sets_are_padded_to_shared_lengths_and_batches_skip_the_padding():
    from refinekit.training.state import DeviceData, bucket_length, pad_to_bucket

    assert [bucket_length(n) for n in (1, 24, 64, 65, 1000, 1024, 1025, 3000)] == [
        64, 64, 64, 128, 1024, 1024, 2048, 3072,
    ]  # fmt: skip
    syn = np.full((5, 16, 16, 1), 200, np.uint8)
    real = np.full((70, 16, 16, 1), 100, np.uint8)
    padded = pad_to_bucket(DeviceData(syn, real, np.arange(5, dtype=np.int32), None))
    assert padded.synthetic.shape == (64, 16, 16, 1) and padded.real.shape == (128, 16, 16, 1)
    assert (padded.synthetic[5:] == 0).all() and (padded.synthetic[:5] == 200).all()
    assert padded.synthetic_labels.tolist() == [0, 1, 2, 3, 4] + [-1] * 59
    assert padded.real_labels is None
    assert (int(padded.synthetic_count), int(padded.real_count)) == (5, 70)
    # Every drawn batch comes from the 5 real images (zero padding would read as -1).
    fns = StepFunctions(
        TrainConfig(refiner="resnet", preset="tiny", batch_size=64), (16, 16, 1), make_mesh()
    )
    draw = jax.jit(fns._sample_indexed)
    for seed in range(4):
        batch, idx = draw(padded.synthetic, jax.random.key(seed), padded.synthetic_count)
        assert int(idx.max()) < 5 and np.allclose(np.asarray(batch), 200 / 127.5 - 1)


def test_runs_that_pretrain_for_different_lengths_share_one_adversarial_program():
    """The adversarial phase's start reaches the step as a value (DeviceData), not a constant:
    changing the pretraining lengths changes no compiled program, so the persistent compile
    cache serves such runs. The learning rates, by contrast, do change it."""
    from refinekit.training.state import DeviceData, pad_to_bucket

    images = np.zeros((24, 16, 16, 1), np.uint8)

    def programs(**settings) -> list[str]:
        config = TrainConfig(refiner="resnet", preset="tiny", batch_size=4, **settings)
        fns = StepFunctions(config, (16, 16, 1), make_mesh())
        start = config.pretrain_refiner_steps + config.pretrain_disc_steps
        data = pad_to_bucket(
            DeviceData(images, images, adversarial_start=np.asarray(start, np.int32))
        )
        state = fns.init_state()
        return [
            fns.adversarial.lower(state, data).as_text(),
            fns.pretrain_disc.lower(state, data).as_text(),
        ]

    base = programs(pretrain_refiner_steps=4, pretrain_disc_steps=2)
    assert programs(pretrain_refiner_steps=30, pretrain_disc_steps=7) == base
    assert programs(pretrain_refiner_steps=4, pretrain_disc_steps=2, lr_disc=3e-3) != base
