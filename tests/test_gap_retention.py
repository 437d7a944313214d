"""Label retention: a refined set made by replacing a known fraction of the synthetic images
with images of another class keeps (1 - that fraction) of its labels, measured by a classifier
cross-fitted on the synthetic class folders; through the library API and through
`refinekit gap-report` (JSON row, per-class values, confusion matrix and the changed images
in the HTML, and the verdict naming the lost labels).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers import scenes, write_pngs
from refinekit.cli import main
from refinekit.gap.scores import label_retention

SIZE = 16
PER_CLASS = 100
GAZES = {"left": (-0.2, -0.12), "right": (0.12, 0.2)}  # the class: where the eye looks


def labelled(seed: int, grain: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    images = [
        scenes(PER_CLASS, SIZE, seed + i, grain=grain, sharpness=40.0, gaze=g)
        for i, g in enumerate(GAZES.values())
    ]
    return np.concatenate(images), np.repeat(np.arange(len(GAZES)), PER_CLASS)


def damaged(images: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Replace `fraction` of the images with an image of the other class."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    hit = rng.permutation(len(images))[: int(round(fraction * len(images)))]
    donors, _ = labelled(seed + 50)
    for i in hit:
        other = np.flatnonzero(labels != labels[i])
        out[i] = donors[rng.choice(other)]
    return out


def test_retention_of_a_refined_set_with_a_known_fraction_of_swapped_classes():
    synthetic, labels = labelled(0)
    for fraction in (0.0, 0.2):
        refined = damaged(synthetic, labels, fraction, 7)
        value = label_retention(synthetic, labels, refined, seed=0)
        assert abs(value - (1 - fraction)) <= 0.05, (fraction, value)


@pytest.mark.slow
def test_gap_report_measures_retention_per_class_and_the_verdict_says_labels_changed(tmp_path):
    synthetic, labels = labelled(0)
    refined = damaged(synthetic, labels, 0.2, 7)
    real, real_labels = labelled(100, grain=0.02)
    names = [f"{list(GAZES)[c]}/img_{i:04d}.png" for i, c in enumerate(labels)]
    real_names = [f"{list(GAZES)[c]}/real_{i:04d}.png" for i, c in enumerate(real_labels)]
    write_pngs(tmp_path / "syn", synthetic, names)
    write_pngs(tmp_path / "ref", refined, names)
    write_pngs(tmp_path / "real", real, real_names)
    out = tmp_path / "gap.json"
    args = ["gap-report", "--real", str(tmp_path / "real"), "--synthetic", str(tmp_path / "syn")]
    args += ["--refined", str(tmp_path / "ref"), "--json", str(out)]
    assert main([*args, "--html", str(tmp_path / "gap.html"), "--bootstrap", "50"]) == 0
    document = json.loads(out.read_text())
    row = next(m for m in document["metrics"] if "retention" in m["key"])
    assert abs(row["refined"]["value"] - 0.8) <= 0.05, row["refined"]
    assert row["refined"]["low"] <= row["refined"]["value"] <= row["refined"]["high"]
    assert row["synthetic"]["value"] >= 0.97  # the classifier's ceiling on held-out synthetic
    details = row["details"]["refined"]
    assert set(details["per_class"]) == set(GAZES) and not details["kept"]
    confusion = np.array(details["confusion"])
    assert (
        confusion.sum() == len(labels)
        and confusion.trace() / confusion.sum() == (row["refined"]["value"])
    )
    assert details["changed"] and all(c["label"] != c["predicted"] for c in details["changed"])
    assert "changed class" in document["verdict"]["headline"]
    assert document["verdict"]["outcome"] in ("mixed", "worse")
    html = (tmp_path / "gap.html").read_text()
    assert "Confusion matrix" in html and "changed class most confidently" in html


@pytest.mark.slow
def test_checkpoint_scoring_reuses_the_fold_classifiers_and_gets_the_same_numbers(monkeypatch):
    """Training scores the same held-out synthetic images at every checkpoint: the fold
    classifiers are trained once, and a cached score equals a freshly trained one."""
    from refinekit.gap import classifier, retention

    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    synthetic = rng.random((30, 16, 16, 1)).astype(np.float32) / 2
    synthetic[labels == 1, :8] += 0.5  # learnable classes
    synthetic[labels == 2, 8:] += 0.5
    refined = [np.clip(synthetic + s * rng.random(synthetic.shape), 0, 1) for s in (0.1, 0.6)]
    fresh = []
    for images in refined:
        retention._FOLD_CACHE.clear()
        fresh.append(label_retention(synthetic, labels, images, seed=3))
    trainings = []
    original = classifier.train_early_stopping
    monkeypatch.setattr(
        classifier, "train_early_stopping", lambda *a: trainings.append(1) or original(*a)
    )
    retention._FOLD_CACHE.clear()
    cached = [label_retention(synthetic, labels, images, seed=3) for images in refined]
    assert len(trainings) == retention.FOLDS  # trained for the first checkpoint, reused after
    assert cached == fresh
    assert fresh[0] > fresh[1]  # the scores still see the refined images
