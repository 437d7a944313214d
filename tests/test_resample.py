"""`refinekit resample` and the weights behind it (gap/reweight.py): weights that restore the
real class balance (80/20 real, balanced synthetic), content weights that follow the layout
and ignore the look, systematic resampling, the clip, the CLI on real files with its exit
codes and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from refinekit.cli import main
from refinekit.gap import photometric, reweight

SIZE = 16


def blobs(n: int, left_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright square in the left or right third of a dark image (True: left), with noise."""
    rng = np.random.default_rng(seed)
    x = np.full((n, SIZE, SIZE, 1), 0.2, np.float32)
    left = rng.random(n) < left_share
    for i in range(n):
        cx = rng.integers(2, 6) if left[i] else rng.integers(10, 14)
        cy = rng.integers(3, 13)
        x[i, cy - 2 : cy + 2, cx - 2 : cx + 2] = 0.8
    return np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1).astype(np.float32), left


def new_look(images: np.ndarray, seed: int) -> np.ndarray:
    """Another camera: blur (sigma 1), 0.6x contrast, +0.1 brighter, noise (std 0.08)."""
    rng = np.random.default_rng(seed)
    out = photometric.blur(images, np.full(len(images), 1.0, np.float32))
    out = 0.5 + (out - 0.5) * 0.6 + 0.1 + rng.normal(0, 0.08, out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


def write(folder: Path, images: np.ndarray, classes: list[str] | None = None) -> Path:
    for i, image in enumerate(images):
        name = f"{classes[i]}/{i:03d}.png" if classes else f"{i:03d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / name, np.round(image[..., 0] * 255).astype(np.uint8))
    return folder


def weighted_shares(classes, weights) -> dict[str, float]:
    return reweight.shares(classes, weights, sorted(set(classes)))


def test_class_weights_restore_an_80_20_real_balance_from_a_balanced_synthetic_set():
    rng = np.random.default_rng(0)
    syn = rng.random((100, 8, 8, 1), dtype=np.float32)
    real = rng.random((50, 8, 8, 1), dtype=np.float32)
    syn_classes = ["cat", "dog"] * 50
    real_classes = ["cat"] * 40 + ["dog"] * 10
    weights = reweight.fit_weights(syn, real, syn_classes, real_classes)
    assert weights.method == "classes"
    assert np.isclose(weights.weights.mean(), 1.0)
    shares = weighted_shares(syn_classes, weights.weights)
    assert abs(shares["cat"] - 0.8) < 0.05 and abs(shares["dog"] - 0.2) < 0.05
    assert weights.classes is not None and weights.classes["weighted_share"] == shares
    assert weights.effective_sample_size < 100  # uneven weights are worth fewer images
    # The resampled list has the real shares too.
    picks = reweight.resample(weights.weights, 200, seed=0)
    drawn = np.array(syn_classes)[picks]
    assert abs(np.mean(drawn == "cat") - 0.8) < 0.05


def test_a_synthetic_class_the_real_set_lacks_gets_weight_zero():
    syn_classes = ["a"] * 10 + ["b"] * 10 + ["c"] * 10
    real_classes = ["a"] * 10 + ["b"] * 10
    images = np.zeros((30, 8, 8, 1), np.float32)
    weights = reweight.fit_weights(images, images[:20], syn_classes, real_classes)
    assert (weights.weights[20:] == 0).all() and np.isclose(weights.weights.mean(), 1.0)
    assert weights.classes is not None and weights.classes["only_in_synthetic"] == ["c"]


def test_content_weights_follow_the_layout_and_ignore_the_look():
    syn, left = blobs(200, 0.5, 1)
    real, _ = blobs(200, 0.8, 2)
    moved = reweight.fit_weights(syn, new_look(real, 3))
    assert moved.method == "content" and moved.classifier is not None
    share = float((moved.weights * left).sum() / moved.weights.sum())
    assert share > 0.6  # from 50% towards the real 80% (a linear classifier, regularised)
    # The same layout mix seen through another camera: nothing to correct.
    same, _ = blobs(200, 0.5, 4)
    looked = reweight.fit_weights(syn, new_look(same, 5))
    assert looked.effective_sample_size > 0.9 * len(syn)
    assert looked.classifier is not None
    assert looked.classifier["held_out_balanced_accuracy"] < 0.6


def test_normalise_clips_to_ten_times_the_mean_and_keeps_zeros():
    weights, clipped = reweight.normalise(np.r_[0.0, 0.01, np.ones(20), 50.0])
    assert np.isclose(weights.mean(), 1.0) and weights[0] == 0.0
    assert clipped == 2
    ratios = weights[weights > 0] / weights[weights > 0].mean()
    assert ratios.max() / ratios.min() <= reweight.CLIP**2 + 1e-9


def test_systematic_resampling_repeats_no_image_under_uniform_weights():
    picks = reweight.resample(np.ones(50), 40, seed=3)
    assert len(picks) == 40 and len(set(picks.tolist())) == 40
    assert np.all(np.diff(picks) >= 0)
    counts = np.bincount(reweight.resample(np.array([1.0, 3.0]), 100, seed=0), minlength=2)
    assert counts.tolist() == [25, 75]


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resample")
    rng = np.random.default_rng(7)
    syn = rng.random((40, 12, 12, 1), dtype=np.float32)
    real = rng.random((30, 12, 12, 1), dtype=np.float32)
    return {
        "root": root,
        "syn": write(root / "syn", syn, ["cat", "dog"] * 20),
        "real": write(root / "real", real, ["cat"] * 24 + ["dog"] * 6),
        "flat": write(root / "flat", real),
        "tiny": write(root / "tiny", real[:3]),
    }


def test_the_cli_writes_weights_and_a_resampled_list_that_restore_the_balance(folders, capsys):
    out, listed = folders["root"] / "out" / "weights.json", folders["root"] / "out" / "list.txt"
    (folders["root"] / "out").mkdir()
    argv = ["resample", "--synthetic", str(folders["syn"]), "--real", str(folders["real"])]
    assert main([*argv, "--out", str(out), "--list", str(listed), "--count", "100"]) == 0
    err = capsys.readouterr().err
    assert "weights by classes" in err and str(out) in err
    document = json.loads(out.read_text())
    assert document["schema"] == "refinekit.resample/1"
    assert document["weights_by"]["method"] == "classes"
    paths = [e["path"] for e in document["weights"]]
    assert paths == sorted(paths) and len(paths) == 40 and paths[0].startswith("cat/")
    weights = np.array([e["weight"] for e in document["weights"]])
    shares = weighted_shares([p.split("/")[0] for p in paths], weights)
    assert abs(shares["cat"] - 0.8) < 0.05
    lines = listed.read_text().splitlines()
    assert lines == document["resampled"] and len(lines) == 100
    assert abs(np.mean([line.startswith("cat/") for line in lines]) - 0.8) < 0.05
    assert not list(out.parent.glob(".*refinekit-tmp*"))  # written atomically
    # The same command, the same bytes.
    again = folders["root"] / "again.json"
    assert main([*argv, "--out", str(again), "--count", "100"]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_content_weights_through_the_cli(folders, tmp_path):
    out = tmp_path / "w.json"
    argv = ["resample", "--synthetic", str(folders["syn"]), "--real", str(folders["flat"])]
    assert main([*argv, "--out", str(out)]) == 0
    document = json.loads(out.read_text())
    assert document["weights_by"]["method"] == "content"
    assert len(document["resampled"]) == 40


CASES = [
    (["--synthetic", "{root}/missing", "--real", "{real}", "--out", "{root}/w.json"], "missing"),
    (["--synthetic", "{syn}", "--real", "{flat}", "--out", "{root}/w.json", "--by", "classes"],
     "--by classes"),
    (["--synthetic", "{syn}", "--real", "{real}", "--out", "{root}/w.json", "--by", "shape"],
     "--by"),
    (["--synthetic", "{syn}", "--real", "{tiny}", "--out", "{root}/w.json"], "--real"),
    (["--synthetic", "{syn}", "--real", "{real}", "--out", "{root}/w.json", "--count", "0"],
     "--count"),
    (["--synthetic", "{syn}", "--real", "{real}", "--out", "{root}/w.json", "--list",
      "{root}/w.json"], "same file"),
    (["--synthetic", "{syn}", "--real", "{real}", "--out", "{syn}/cat/000.png"], "--out"),
    (["--synthetic", "{syn}", "--real", "{real}"], "--out"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "expected"), CASES, ids=[c[1] for c in CASES])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(folders, argv, expected, capsys):
    before = sorted(folders["root"].rglob("*"))
    fill = {k: str(v) for k, v in folders.items()}
    code = main(["resample", *[a.format(**fill) for a in argv]])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert sorted(folders["root"].rglob("*")) == before


def test_help_fits_80_columns():
    from typer.testing import CliRunner

    from refinekit.cli import app

    result = CliRunner().invoke(app, ["resample", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    assert max(len(line) for line in result.output.splitlines()) <= 80
    for flag in ("--synthetic", "--real", "--out", "--list", "--by", "--count", "--seed"):
        assert flag in result.output
