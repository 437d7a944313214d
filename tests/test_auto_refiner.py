"""--refiner auto: candidates in RUN/candidates/, the winner's run copied into RUN."""

from __future__ import annotations

import json

import pytest

from conftest import TINY
from refinekit.cli import main
from refinekit.training import auto


def _summary(retention=None, downstream=None, step=100, distance=1.0, noise=0.03, helped=None):
    return {
        "step": step,
        "retention": retention,
        "downstream": downstream,
        "downstream_noise": None if downstream is None else noise,
        "distance": distance,
        "helped": helped,
    }


def test_without_a_classifier_the_candidate_closer_to_the_real_images_wins():
    kind, reason = auto.choose(
        {"acquisition": _summary(0.96, distance=2.0), "resnet": _summary(0.91, distance=0.9)}
    )
    assert kind == "resnet" and "closest to the held-out real images" in reason
    assert "acquisition 2.000, resnet 0.900" in reason
    both = {"acquisition": _summary(0.82, distance=0.12), "resnet": _summary(0.9, distance=2.1)}
    assert auto.choose(both)[0] == "acquisition"  # a low camera retention is not a label change
    both["resnet"]["distance"] = 0.12
    assert auto.choose(both)[0] == "acquisition"  # a tie keeps the camera


def test_a_classifier_decides_only_beyond_its_noise():
    both = {
        "acquisition": _summary(0.9, 0.70, distance=0.1),
        "resnet": _summary(0.99, 0.78, distance=1.6),
    }
    kind, reason = auto.choose(both)
    assert kind == "resnet" and "apart by more than their noise" in reason
    both["resnet"]["downstream"] = 0.72  # 0.02 apart, noise 0.03: the distance decides
    kind, reason = auto.choose(both)
    assert kind == "acquisition" and "could not tell them apart" in reason


def test_when_both_signals_are_within_noise_the_higher_score_decides():
    # distances 0.9 apart (< DISTANCE_NOISE, one unit of a real half's own spread) and scores
    # 0.02 apart (noise 0.03): neither tells them apart, and the score is about a classifier
    both = {
        "acquisition": _summary(0.9, 0.70, distance=0.1),
        "resnet": _summary(0.99, 0.72, distance=1.0),
    }
    kind, reason = auto.choose(both)
    assert kind == "resnet" and "by less than the scores' noise" in reason
    assert "distance acquisition 0.100, resnet 1.000; apart by less than 1" in reason
    both["resnet"]["distance"] = 1.2  # 1.1 apart: the distance tells them apart
    assert auto.choose(both)[0] == "acquisition"
    both["resnet"]["distance"] = 1.0
    both["resnet"]["downstream"] = 0.70  # equal scores: the distance (a tie keeps the camera)
    kind, reason = auto.choose(both)
    assert kind == "acquisition" and "closest to the held-out real images" in reason


def test_the_one_candidate_that_beat_raw_synthetic_wins_over_one_that_did_not():
    # within noise of each other, but only the camera beat raw synthetic beyond noise: the
    # closer ResNet would be handed over with the do-no-harm warning
    both = {
        "acquisition": _summary(0.98, 0.738, distance=1.38, noise=0.05, helped=True),
        "resnet": _summary(0.91, 0.700, distance=0.91, noise=0.05, helped=False),
    }
    kind, reason = auto.choose(both)
    assert kind == "acquisition" and "above raw synthetic beyond noise" in reason
    assert "acquisition 0.738, resnet 0.700" in reason
    both["resnet"]["helped"] = True  # both helped: as if neither, the distance within noise
    both["acquisition"]["distance"] = 2.38  # (1.47 apart, beyond the distance's noise)
    assert auto.choose(both)[0] == "resnet"
    both["acquisition"]["helped"] = both["resnet"]["helped"] = False  # neither: the same
    assert auto.choose(both)[0] == "resnet"


def test_without_distances_the_camera_is_kept():
    kind, reason = auto.choose(
        {"acquisition": _summary(distance=None), "resnet": _summary(distance=None)}
    )
    assert kind == "acquisition" and "moves no pixel" in reason


def test_unhealthy_candidates_are_not_chosen():
    summaries = {"acquisition": _summary(0.99, step=None, distance=0.1), "resnet": _summary(0.9)}
    kind, reason = auto.choose(summaries)
    assert kind == "resnet" and "only candidate" in reason


@pytest.mark.slow
def test_auto_fits_the_camera_publishes_it_and_refine_uses_it(gray16, tmp_path, capsys):
    syn, real = gray16
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run)]
    short = ["--steps", "6", "--checkpoint-every", "6", "--log-every", "3", *TINY]
    short += ["--pretrain-disc-steps", "4", "--pretrain-refiner-steps", "4", "--val-fraction", "0"]
    assert main([*args, *short, "--refiner", "auto"]) == 0
    err = capsys.readouterr().err
    assert "--refiner auto chose acquisition" in err
    record = json.loads((run / auto.AUTO_FILE).read_text())
    assert record["chosen"] == "acquisition"
    assert list(record["candidates"]) == ["acquisition", "resnet"]  # both fitted
    assert "moves no pixel" in record["reason"]  # no validation split: nothing to compare
    config = json.loads((run / "config.json").read_text())
    assert config["refiner"] == "acquisition" and config["steps"] == 6
    best = json.loads((run / "best.json").read_text())["step"]
    assert (run / "checkpoints" / str(best)).is_dir()  # the winner's checkpoint, copied
    out = tmp_path / "refined"
    assert main(["refine", str(syn), str(out), "--run", str(run)]) == 0
    assert len(list(out.glob("*.png"))) == len(list(syn.glob("*.png")))
    # The same command again resumes the finished candidate and chooses the same
    assert main([*args, *short, "--refiner", "auto"]) == 0
    assert json.loads((run / auto.AUTO_FILE).read_text())["chosen"] == "acquisition"
    # ... and without --refiner: RUN/config.json is the winner's copy, but RUN is an auto run
    (run / auto.AUTO_FILE).unlink()
    kind_at = short.index("--refiner")  # TINY's
    assert main([*args, *short[:kind_at], *short[kind_at + 2 :]]) == 0
    assert "--refiner auto chose acquisition" in capsys.readouterr().err
    assert (run / auto.AUTO_FILE).is_file()
