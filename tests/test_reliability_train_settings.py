"""docs/reliability.md, train and the command line (D6, D8, D13, and the run folder's lock): settings are
validated before anything is written, --out is never an input, flag errors are one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, write_images
from helpers import _one_line_error
from refinekit import TrainConfig
from refinekit.cli import main
from refinekit.errors import ConfigError

SHORT = ["--steps", "2", "--pretrain-refiner-steps", "2", "--pretrain-disc-steps", "1"]


def _train(syn: Path, real: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(out), *TINY, *extra]


# ---------------------------------------------------------------------------------------------
# D8: late validation poisoned the run folder


@pytest.mark.parametrize(
    "settings, needle",
    [
        ({"seed": 10**30}, "c.json: seed: expected an integer in 0..4294967295"),
        ({"batch_size": 2**40}, "c.json: batch_size: expected an integer in 1..65536"),
        ({"steps": 2**31}, "steps"),
        ({"width": 10**6}, "c.json: width: expected"),
        ({"lr_refiner": float("inf")}, "c.json: lr_refiner: expected a finite number"),
        ({"size": [16, 10**7]}, "c.json: size: 10000000 pixels per side"),
        ({"disc_layers": [["conv", 3, 2, 10**7], ["conv", 1, 1, 2]]}, "disc_layers"),
    ],
)
def test_out_of_range_settings_are_refused_before_anything_is_written(
    gray16, tmp_path, capsys, settings, needle
):
    syn, real = gray16
    config = tmp_path / "c.json"
    tiny = {"preset": "tiny", "batch_size": 4, "steps": 1, "pretrain_refiner_steps": 1}
    config.write_text(json.dumps({**tiny, "pretrain_disc_steps": 1, **settings}))
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run)]
    code = main([*args, "--config", str(config)])
    _one_line_error(capsys.readouterr().err, needle)
    assert code == 2
    assert not run.exists()  # before: config.json was written, then "unexpected ..."


def test_negative_seed_names_the_flag(gray16, tmp_path, capsys):
    syn, real = gray16
    code = main(_train(syn, real, tmp_path / "run", "--seed", "-1"))
    err = capsys.readouterr().err
    _one_line_error(err, "--seed")
    assert "unexpected" not in err and code == 2
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_folder_without_checkpoints_takes_the_corrected_settings(gray16, tmp_path, capsys):
    """A start that failed before its first checkpoint left config.json; the corrected rerun
    was then refused as "trained with other settings" although nothing was trained."""
    syn, real = gray16
    run = tmp_path / "run"
    run.mkdir()
    poisoned = TrainConfig(
        refiner="resnet",
        synthetic=str(syn),
        real=str(real),
        out=str(run),
        preset="tiny",
        batch_size=4,
        seed=7,
    )
    (run / "config.json").write_text(json.dumps(poisoned.to_dict()))
    code = main(_train(syn, real, run, *SHORT, "--seed", "3"))
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / "config.json").read_text())["seed"] == 3
    # Once a checkpoint exists, other settings are refused as before.
    code = main(_train(syn, real, run, *SHORT, "--seed", "4"))
    _one_line_error(capsys.readouterr().err, "trained with other settings", "seed: 3 -> 4")
    assert code == 2


def test_config_limits_are_plain_config_errors():
    with pytest.raises(ConfigError, match="--seed"):
        TrainConfig(refiner="resnet", seed=-1)
    with pytest.raises(ConfigError, match="--lambda-reg: expected a finite number"):
        TrainConfig(refiner="resnet", lambda_reg=float("nan"))
    with pytest.raises(ConfigError, match="add up to"):
        TrainConfig(refiner="resnet", steps=2**31 - 1, pretrain_refiner_steps=1)
    TrainConfig(
        refiner="resnet", seed=2**32 - 1, batch_size=1 << 16
    )  # the limits themselves are fine


# ---------------------------------------------------------------------------------------------
# D6: --out inside --synthetic


@pytest.mark.parametrize("where", ["inside_synthetic", "is_real", "holds_real", "via_link"])
def test_train_out_never_overlaps_an_input(gray16, tmp_path, capsys, where):
    syn, real = gray16
    (tmp_path / "link").symlink_to(syn)
    out = {
        "inside_synthetic": syn / "run",  # before: resumed on its own sample grids
        "is_real": real,
        "holds_real": real.parent,
        "via_link": tmp_path / "link" / "run",
    }[where]
    before = sorted(p.name for p in syn.iterdir())
    code = main(_train(syn, real, out, *SHORT))
    _one_line_error(capsys.readouterr().err, "--out", "never writes onto its inputs")
    assert code == 2
    assert sorted(p.name for p in syn.iterdir()) == before


# ---------------------------------------------------------------------------------------------
# D13: messages


@pytest.mark.parametrize(
    "args, needle",
    [
        (["train", "--bogus"], "No such option: --bogus"),
        (["train", "--seed", "x"], "Invalid value for '--seed'"),
        (["refine"], "Missing argument 'IN'"),
        (["refine", "a", "b", "--jpeg-quality", "0"], "'--jpeg-quality'"),
        (["gap-report", "--real"], "'--real' requires an argument"),
        (["nonsense"], "No such command 'nonsense'"),
    ],
)
def test_typer_flag_errors_are_one_line(capsys, args, needle):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err  # before: a 5-line boxed panel
    assert err.startswith("error: ") and needle in err, err
    assert "╭" not in err


def test_help_and_version_still_work(capsys):
    assert main(["--version"]) == 0
    assert main(["train", "--help"]) == 0
    assert "--synthetic" in capsys.readouterr().out


@pytest.mark.slow
def test_one_by_one_training_images_ask_for_size_without_blaming_a_flag(tmp_path, capsys):
    syn = write_images(tmp_path / "syn", 4, (1, 1, 3), 0, smooth=False)
    real = write_images(tmp_path / "real", 4, (16, 16, 3), 1, smooth=False)
    code = main(_train(syn, real, tmp_path / "run", *SHORT))
    err = capsys.readouterr().err
    _one_line_error(err, "the images are 1x1 pixels", "pass --size H W")
    assert "--size: expected" not in err and code == 2
    assert main(_train(syn, real, tmp_path / "run", *SHORT, "--size", "8", "8")) == 0


def test_train_out_a_file_is_a_usage_error_not_a_resume_hint(gray16, tmp_path, capsys):
    syn, real = gray16
    (tmp_path / "file").write_text("x")
    code = main(_train(syn, real, tmp_path / "file", *SHORT))
    err = capsys.readouterr().err
    _one_line_error(err, "--out", "exists and is not a folder")
    assert "resume" not in err and code == 2
    assert (tmp_path / "file").read_text() == "x"


# ---------------------------------------------------------------------------------------------
# One writer per run folder

_HOLD = textwrap.dedent(
    """
    import sys, time
    from refinekit.io.lock import FolderLock
    with FolderLock(sys.argv[1], "--out"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


@pytest.mark.slow
def test_a_second_trainer_on_one_run_folder_is_refused(gray16, tmp_path, capsys):
    syn, real = gray16
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = main(_train(syn, real, run, *SHORT))
        _one_line_error(capsys.readouterr().err, "another refinekit process", f"pid {holder.pid}")
        assert code == 2
        assert not (run / "config.json").exists()
    finally:
        holder.kill()
        holder.wait(timeout=30)
        holder.stdout.close()
    # The kernel dropped the killed holder's lock: the run starts now.
    assert main(_train(syn, real, run, *SHORT)) == 0
    assert np.isfinite(json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"])


def test_config_that_is_a_fifo_is_refused_without_hanging(gray16, tmp_path):
    import os

    syn, real = gray16
    fifo = tmp_path / "c.json"
    os.mkfifo(fifo)
    args = ["--synthetic", str(syn), "--real", str(real), "--out", str(tmp_path / "run")]
    result = subprocess.run(
        [sys.executable, "-m", "refinekit", "train", *args, "--config", str(fifo)],
        capture_output=True,
        text=True,
        timeout=120,  # before: blocked forever opening the FIFO
    )
    assert result.returncode == 2
    _one_line_error(result.stderr, "--config", str(fifo), "FIFO")
