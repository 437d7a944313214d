"""--refiner auto: candidates in RUN/candidates/, the winner's run copied into RUN."""

from __future__ import annotations

import json

import pytest

from conftest import TINY
from refinekit.cli import main
from refinekit.training import auto


def _summary(retention=None, downstream=None, step=100):
    return {"step": step, "retention": retention, "downstream": downstream, "distance": 1.0}


def test_the_camera_model_is_kept_when_it_keeps_labels_or_labels_cannot_be_checked():
    assert auto.choose({"acquisition": _summary(0.95)})[0] == "acquisition"
    kind, reason = auto.choose({"acquisition": _summary(None)})
    assert kind == "acquisition" and "moves no pixel" in reason
    assert not auto._needs_resnet(_summary(0.95))


def test_a_camera_that_loses_labels_hands_over_to_the_resnet():
    camera = _summary(0.40)
    assert auto._needs_resnet(camera)
    kind, reason = auto.choose({"acquisition": camera, "resnet": _summary(0.97)})
    assert kind == "resnet" and "lost labels" in reason


def test_with_a_downstream_score_the_better_classifier_wins_and_a_tie_keeps_the_camera():
    both = {"acquisition": _summary(0.9, 0.70), "resnet": _summary(0.99, 0.74)}
    assert auto.choose(both)[0] == "resnet"
    both["acquisition"]["downstream"] = 0.74
    assert auto.choose(both)[0] == "acquisition"
    assert auto._needs_resnet(_summary(0.99, 0.8))  # a classifier can compare: fit both


def test_unhealthy_candidates_are_not_chosen():
    summaries = {"acquisition": _summary(0.99, step=None), "resnet": _summary(0.9)}
    assert auto.choose(summaries)[0] == "resnet"


@pytest.mark.slow
def test_auto_fits_the_camera_publishes_it_and_refine_uses_it(gray16, tmp_path, capsys):
    syn, real = gray16
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run)]
    short = ["--steps", "6", "--checkpoint-every", "6", "--log-every", "3", *TINY]
    short += ["--pretrain-disc-steps", "4", "--val-fraction", "0"]
    assert main([*args, "--refiner", "auto", *short]) == 0
    err = capsys.readouterr().err
    assert "--refiner auto chose acquisition" in err
    record = json.loads((run / auto.AUTO_FILE).read_text())
    assert record["chosen"] == "acquisition" and list(record["candidates"]) == ["acquisition"]
    assert not (run / "candidates" / "resnet").exists()  # unlabelled: the camera is kept
    config = json.loads((run / "config.json").read_text())
    assert config["refiner"] == "acquisition" and config["steps"] == 6
    best = json.loads((run / "best.json").read_text())["step"]
    assert (run / "checkpoints" / str(best)).is_dir()  # the winner's checkpoint, copied
    out = tmp_path / "refined"
    assert main(["refine", str(syn), str(out), "--run", str(run)]) == 0
    assert len(list(out.glob("*.png"))) == len(list(syn.glob("*.png")))
    # The same command again resumes the finished candidate and chooses the same
    assert main([*args, "--refiner", "auto", *short]) == 0
    assert json.loads((run / auto.AUTO_FILE).read_text())["chosen"] == "acquisition"
