"""Checkpoints chosen by what they do for a classifier on held-out real images, and the
do-no-harm warning when refinement does not beat the raw synthetic set."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from refinekit.cli import main
from refinekit.training import selection
from refinekit.training.validation import draw_split


def _record(step, accuracy, retention=0.99, low=0.02, distance=0.1, phase="adversarial"):
    return {
        "step": step,
        "phase": phase,
        "healthy": True,
        "health": [],
        "distance": distance,
        "retention": retention,
        "downstream": {
            "accuracy": accuracy,
            "interval": [accuracy - 0.05, accuracy + 0.05],
            "per_seed": [accuracy] * 3,
            "test_images": 40,
            "raw_synthetic": {"accuracy": 0.6, "interval": [0.55, 0.65]},
            "vs_raw": {"difference": accuracy - 0.6, "interval": [low, low + 0.1]},
        },
    }


def test_the_best_downstream_score_wins_over_the_lowest_distance():
    records = [_record(100, 0.70, distance=0.05), _record(200, 0.80, distance=0.2)]
    choice = selection.choose_best(records)
    assert choice.step == 200
    assert "highest downstream accuracy" in choice.reason and choice.warning is None


def test_a_checkpoint_that_destroys_the_class_is_not_chosen_however_it_scores():
    records = [_record(100, 0.70, retention=0.98), _record(200, 0.95, retention=0.50)]
    assert selection.choose_best(records).step == 100


def test_no_checkpoint_beyond_noise_above_raw_synthetic_warns_to_train_on_it(tmp_path):
    records = [_record(100, 0.62, low=-0.04), _record(200, 0.61, low=-0.05)]
    choice = selection.choose_best(records)
    assert choice.step == 100
    # +0.02 within noise: not shown to help (not a loss), and raw synthetic is the safe choice
    assert choice.warning and choice.warning.startswith("refinement was not shown to help")
    assert "raw synthetic" in choice.warning and "too few to tell" not in choice.warning
    below = [_record(100, 0.58, low=-0.06)]  # below raw synthetic: did not help
    assert selection.choose_best(below).warning.startswith("refinement did not help a classifier")
    selection.write_best(tmp_path, records)
    best = json.loads((tmp_path / selection.BEST_FILE).read_text())
    assert best["helped"] is False and best["raw_synthetic"]["accuracy"] == 0.6
    assert best["downstream"]["accuracy"] == 0.62


def test_a_gain_too_uncertain_to_show_is_called_not_shown_not_a_loss():
    # 16 held-out real images: +0.08, interval -0.15 to +0.33
    record = _record(100, 0.68, low=-0.15)
    record["downstream"]["vs_raw"]["interval"] = [-0.15, 0.33]
    warning = selection.choose_best([record]).warning
    assert warning and warning.startswith("refinement was not shown to help a classifier")
    assert "too few to tell" in warning and "+0.080" in warning
    # the same interval around a loss stays "did not help"
    record = _record(100, 0.52, low=-0.32)
    record["downstream"]["vs_raw"]["interval"] = [-0.32, 0.16]
    assert selection.choose_best([record]).warning.startswith("refinement did not help")


def test_without_labelled_real_images_the_distance_rule_stays_and_best_json_says_so(tmp_path):
    records = [{**_record(100, 0.0, distance=0.3), "downstream": None}]
    records.append({**_record(200, 0.0, distance=0.2), "downstream": None})
    choice = selection.choose_best(records)
    assert choice.step == 200 and "lowest distance" in choice.reason
    selection.write_best(tmp_path, records)
    best = json.loads((tmp_path / selection.BEST_FILE).read_text())
    assert best["downstream"] is None and "not measured" in best["downstream_note"]


def test_a_small_labelled_real_set_still_gives_every_class_test_images():
    labels = np.repeat(np.arange(5), 4)  # 4 real images per class, 20 in all
    split = draw_split(20, 200, np.repeat(np.arange(5), 40), 0.1, seed=0, real_labels=labels)
    assert len(split.real) == 6  # a third of 20, below MIN_PER_CLASS x 5 = 10
    assert (np.bincount(labels[split.real], minlength=5) >= 1).all()
    unlabelled = draw_split(20, 200, None, 0.1, seed=0)
    assert len(unlabelled.real) == 0  # fewer than 32 real images: no split without classes


def _bars(folder, cls, count, seed, noise, size=16):
    rng = np.random.default_rng(seed)
    folder = folder / cls
    folder.mkdir(parents=True)
    for i in range(count):
        image = rng.uniform(0, noise, (size, size))
        k = rng.integers(3, size - 3)
        if cls == "v":
            image[:, k - 1 : k + 1] += 0.7
        else:
            image[k - 1 : k + 1, :] += 0.7
        iio.imwrite(folder / f"{i:03d}.png", np.round(np.clip(image, 0, 1) * 255).astype(np.uint8))


@pytest.mark.slow
@pytest.mark.full_classifiers
def test_train_with_labelled_real_images_scores_the_checkpoint_and_raw_synthetic(tmp_path, capsys):
    for cls in ("v", "h"):
        _bars(tmp_path / "syn", cls, 40, 0 if cls == "v" else 1, 0.1)
        _bars(tmp_path / "real", cls, 20, 2 if cls == "v" else 3, 0.4)
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(tmp_path / "syn"), "--real", str(tmp_path / "real")]
    assert main([*args, "--out", str(run), "--refiner", "histogram"]) == 0
    err = capsys.readouterr().err
    assert "downstream: a small CNN trained on these refined images scores" in err
    (score,) = selection.read_scores(run)
    assert score["downstream"]["test_images"] == len(
        json.loads((run / "validation.json").read_text())["real"]
    )
    assert 0.0 <= score["downstream"]["accuracy"] <= 1.0
    assert score["downstream"]["raw_synthetic"]["accuracy"] >= 0.75  # the bars are easy
    best = json.loads((run / selection.BEST_FILE).read_text())
    assert best["step"] == 0 and isinstance(best["helped"], bool)
    # --downstream off: the distance rule, and the run says the benefit was not measured
    off = tmp_path / "off"
    assert main([*args, "--out", str(off), "--refiner", "histogram", "--downstream", "off"]) == 0
    assert "downstream benefit not measured" in capsys.readouterr().err
    assert json.loads((off / selection.BEST_FILE).read_text())["downstream"] is None


@pytest.mark.slow
@pytest.mark.full_classifiers
def test_images_larger_than_the_classifiers_view_are_scored_at_its_size(tmp_path, monkeypatch):
    """Checkpoints refine the scored images in chunks and keep them at the downstream
    classifier's size (a MAX_SIDE view), never as full-size floats all at once."""
    from refinekit.downstream import classifier, judge

    seen = []
    score = judge.CandidateJudge.score
    monkeypatch.setattr(
        judge.CandidateJudge, "score", lambda self, x: seen.append(x.shape) or score(self, x)
    )
    for cls in ("v", "h"):
        _bars(tmp_path / "syn", cls, 40, 0 if cls == "v" else 1, 0.1, size=48)
        _bars(tmp_path / "real", cls, 20, 2 if cls == "v" else 3, 0.4, size=48)
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(tmp_path / "syn"), "--real", str(tmp_path / "real")]
    assert main([*args, "--out", str(run), "--refiner", "histogram"]) == 0
    assert seen and all(shape[1:3] == (classifier.MAX_SIDE,) * 2 for shape in seen)
    (record,) = selection.read_scores(run)
    assert record["downstream"]["raw_synthetic"]["accuracy"] >= 0.75


def test_a_raw_synthetic_set_already_at_the_ceiling_is_said_so():
    record = _record(100, 1.0, low=0.0)
    record["downstream"]["raw_synthetic"]["accuracy"] = 1.0
    warning = selection.choose_best([record]).warning
    assert warning and "already scores 1.000" in warning and "nothing" in warning


def test_a_tiny_labelled_split_scores_no_retention_instead_of_hanging():
    from refinekit.gap.classifier import _index_stream
    from refinekit.training.validation import score

    rng = np.random.default_rng(0)
    images = rng.random((6, 16, 16, 1)).astype(np.float32)
    out = score(images, images, images, np.array([0, 1] * 3), seed=0)
    assert out == {"distance": None, "retention": None}
    with pytest.raises(ValueError, match="at least one training image"):
        next(_index_stream(0, rng))
