"""The evaluation harness end to end on a tiny case: data, train (real CLI), refine, judges."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import backbone, baselines, data, judges, run  # noqa: E402
from benchmarks.harness.cases import CASES  # noqa: E402

TINY_TRAIN = (
    "--preset tiny --steps 4 --pretrain-refiner-steps 2 --pretrain-disc-steps 2 --batch-size 8 "
    "--log-every 2 --checkpoint-every 4 --sample-every 4 --lambda-label 0 --val-fraction 0"
)


def test_cases_build_deterministic_layout(tmp_path):
    for name, case in CASES.items():
        root = data.build(name, tmp_path / "a", seed=3, scale="tiny")
        n = len(case.classes)
        per = data.SCALES["tiny"]
        for split in ("synthetic", "oracle", "real_labelled", "val", "test"):
            assert sorted(p.name for p in (root / split).iterdir()) == sorted(case.classes)
        assert len(list((root / "synthetic").rglob("*.png"))) == per["synthetic"] * n
        assert len(list((root / "oracle").rglob("*.png"))) == per["synthetic"] * n
        flat = list((root / "real").iterdir())
        assert len(flat) == per["real"] * n and all(p.suffix == ".png" for p in flat)
        assert len(list((root / "real50").iterdir())) == data.SMALL_REAL_PER_CLASS * n
        x = data.load_labelled(root / "test", list(case.classes)).x
        assert x.shape[1] == case.size**2 * case.channels and 0 <= x.min() <= x.max() <= 1
    again = data.build("stroke", tmp_path / "b", seed=3, scale="tiny")
    first = tmp_path / "a" / "stroke"
    for path in sorted((first / "synthetic").rglob("*.png"))[:5] + sorted(first.glob("real/*"))[:5]:
        assert path.read_bytes() == (again / path.relative_to(first)).read_bytes()
    other = data.build("stroke", tmp_path / "c", seed=4, scale="tiny")
    assert (other / "synthetic/E/s00000.png").read_bytes() != (
        first / "synthetic/E/s00000.png"
    ).read_bytes()


def test_parse_variant():
    assert run.parse_variant("default", "all") == (
        "default",
        {"real": "flat", "real-count": "all"},
        [],
    )
    name, settings, flags = run.parse_variant("content=nce+real=labelled+ema-decay=0", "50")
    assert name == "content=nce+real=labelled+ema-decay=0+real-count=50"
    assert settings == {"real": "labelled", "real-count": "50"}
    assert flags == ["--content", "nce", "--ema-decay", "0"]
    with pytest.raises(SystemExit):
        run.parse_variant("real=sideways", "all")
    _, settings, flags = run.parse_variant("refiner=acquisition+resnet+real=labelled+strict", "all")
    assert flags == ["--refiner", "acquisition+resnet", "--strict"]
    assert settings["real"] == "labelled"


def test_the_cnn_judge_learns_a_separable_task_and_reports_each_seed():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(2), 40)
    x = rng.uniform(0, 0.2, (80, 8, 8, 1))
    x[y == 1, 2:6, 2:6] += 0.7  # class 1: a bright square
    x = x.reshape(80, -1).astype(np.float32)
    out = judges.train_on("cnn", x, y, {"test": (x, y)}, (8, 8, 1))
    assert len(out["test_seeds"]) == len(judges.CNN_SEEDS)
    assert out["test"] == pytest.approx(np.mean(out["test_seeds"])) and out["test"] >= 0.95


def test_training_free_baselines_keep_shapes_and_use_the_real_histogram():
    rng = np.random.default_rng(0)
    syn = rng.uniform(0, 1, (30, 64)).astype(np.float32)
    real = rng.beta(2, 5, (50, 64)).astype(np.float32)
    for name in baselines.NAMES:
        out, _ = baselines.make(name, syn, real, (8, 8, 1))
        assert out.shape == syn.shape and 0 <= out.min() and out.max() <= 1, name
    matched, _ = baselines.make("histogram", syn, real, (8, 8, 1))
    # each image now has the real set's quantiles, in its own pixel order
    assert np.allclose(
        np.sort(matched[0]), np.quantile(real, (np.arange(64) + 0.5) / 64), atol=1e-6
    )
    assert (np.argsort(matched[0], kind="stable") == np.argsort(syn[0], kind="stable")).all()


def test_retention_counts_held_out_predictions():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 20)
    centres = np.eye(3) * 0.9
    syn = np.clip(centres[y] + rng.normal(0, 0.03, (60, 3)), 0, 1)
    scores = judges.retention("svm", syn, syn[:, ::-1], y, (1, 3, 1))  # refined = channels reversed
    assert scores["synthetic"] == 1.0
    # reversing the axes swaps classes 0 and 2 and keeps class 1: one third retained
    assert scores["refined"] == pytest.approx(1 / 3, abs=0.05)


@pytest.mark.slow
@pytest.mark.harness
def test_harness_end_to_end(tmp_path):
    argv = ["--cases", "acquisition", "--out", str(tmp_path / "out"), "--data", str(tmp_path / "data"),
            "--scale", "tiny", "--lock", "", "--commit", "worktree", "--judges", "svm,mlp",
            "--extra-train-args", TINY_TRAIN]  # fmt: skip
    assert run.main(argv) == 0
    results = json.loads((tmp_path / "out/results.json").read_text())
    case = results["cases"]["acquisition"]
    assert set(case["baseline"]) == {"synthetic", "oracle", "real", "real50", *baselines.NAMES}
    assert set(variant_scores := case["variants"]["default"]["with_augment"]["accuracy"]) == {
        "svm",
        "mlp",
    }, variant_scores
    variant = case["variants"]["default"]
    for entry in [variant, *case["baseline"].values()]:
        for judge in ("svm", "mlp"):
            assert set(entry["accuracy"][judge]) == {"val", "test"}
            assert all(0.0 <= v <= 1.0 for v in entry["accuracy"][judge].values())
    for judge in ("svm", "mlp"):
        assert 0.0 <= variant["retention"][judge]["refined"] <= 1.0
    assert variant["train_seconds"] > 0 and variant["health"]["adversarial_logs"] >= 1
    assert len(list((tmp_path / "out/acquisition/default/refined").rglob("*.png"))) == 60
    assert "| refined `default`" in (tmp_path / "out/results.md").read_text()
    # the default is auto: each candidate is refined and judged as a row of its own
    assert set(variant["candidates"]) == {"acquisition", "resnet"}
    assert sum(c["chosen"] for c in variant["candidates"].values()) == 1
    for c in variant["candidates"].values():
        assert 0.0 <= c["accuracy"]["svm"]["test"] <= 1.0
    assert "candidate `resnet`" in (tmp_path / "out/results.md").read_text()
    # the discriminator-as-backbone experiment reads a trained run's discriminator
    candidate = tmp_path / "out/acquisition/default/run/candidates/resnet"
    argv_backbone = ["--case", "acquisition", "--run", str(candidate), "--data",
                     str(tmp_path / "data"), "--draws", "1", "--per-class", "2",
                     "--json", str(tmp_path / "backbone.json")]  # fmt: skip
    assert backbone.main(argv_backbone) == 0
    rows = json.loads((tmp_path / "backbone.json").read_text())["rows"]
    assert len(rows) == 4 and all(0.0 <= v[0] <= 1.0 for v in rows.values())
    trained, _ = backbone.load_trunk(candidate, 1, trained=True)
    fresh, _ = backbone.load_trunk(candidate, 1, trained=False)
    images = np.random.default_rng(0).uniform(0, 1, (2, 16, 16, 1)).astype(np.float32)
    assert not np.allclose(np.asarray(trained(images)), np.asarray(fresh(images)))
    # resumable: a second call skips every step; other flags into the same run are refused
    assert run.main(argv) == 0
    attempts = (tmp_path / "out/acquisition/default/train_attempts.jsonl").read_text()
    assert len(attempts.splitlines()) == 1
    with pytest.raises(SystemExit, match="other flags"):
        run.main(argv[:-1] + [TINY_TRAIN + " --lambda-reg 0.3"])


def test_a_row_is_added_to_results_as_they_are_on_disk_not_as_they_were(tmp_path, monkeypatch):
    # Two harness processes on one --out: each started with its own copy of results.json.
    # The second's row must not erase the row the first wrote in the meantime.
    monkeypatch.setattr(run.report, "markdown", lambda results: json.dumps(results))
    entry = {"meta": {"case": "stroke"}, "baseline": {}, "variants": {}}
    run.record(tmp_path, "stroke", entry, "first", {"score": 1})
    run.record(tmp_path, "stroke", entry, "second", {"score": 2})  # entry: a stale copy
    run.record(tmp_path, "texture", {**entry, "meta": {"case": "texture"}}, "third", {"score": 3})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["cases"]["stroke"]["variants"] == {"first": {"score": 1}, "second": {"score": 2}}
    assert saved["cases"]["texture"]["variants"] == {"third": {"score": 3}}
    assert json.loads((tmp_path / "results.md").read_text()) == saved


def test_lose_labels_replaces_the_share_asked_for_by_another_class(tmp_path):
    from benchmarks.harness.lose_labels import lose_labels
    from PIL import Image

    for value, cls in ((0, "a"), (255, "b")):
        (tmp_path / "src" / cls).mkdir(parents=True)
        for i in range(50):
            Image.fromarray(np.full((4, 4), value, np.uint8)).save(tmp_path / f"src/{cls}/{i}.png")
    replaced = lose_labels(tmp_path / "src", tmp_path / "out", 0.2)
    changed = 0
    for cls, value in (("a", 0), ("b", 255)):
        for path in (tmp_path / "out" / cls).glob("*.png"):
            changed += int(np.asarray(Image.open(path))[0, 0] != value)
    assert changed == replaced and 10 <= replaced <= 30
    assert len(list((tmp_path / "out").rglob("*.png"))) == 100


def test_transfer_subset_takes_the_first_real_images_of_each_class(tmp_path):
    from benchmarks.harness.transfer import real_subset

    root = data.build("acquisition-b", tmp_path, seed=1, scale="tiny")
    subset = real_subset(root, "acquisition-b", 1)
    names = sorted(p.name for p in subset.iterdir())
    classes = CASES["acquisition-b"].classes
    assert len(names) == len(classes)
    # one of each class, and the same names real_labelled files them under
    owner = {p.name: p.parent.name for p in (root / "real_labelled").rglob("*.png")}
    assert sorted(owner[n] for n in names) == sorted(classes)
    # the five-per-class folder data.build writes starts with the same images
    assert set(names) <= {p.name for p in (root / "real50").iterdir()}
    assert real_subset(root, "acquisition-b", 1) == subset  # made once


def test_a_sibling_case_shares_its_parent_content_renderer_but_not_its_camera():
    parent, sibling = CASES["acquisition"], CASES["acquisition-b"]
    params = parent.sample(np.random.default_rng(0), 3, real=True)
    assert np.array_equal(parent.synthetic(params, None), sibling.synthetic(params, None))
    a = parent.real(params, np.random.default_rng(1))
    b = sibling.real(params, np.random.default_rng(1))
    assert not np.allclose(a, b) and len(np.unique(b)) <= 8  # 8 levels


@pytest.mark.slow
@pytest.mark.harness
def test_transfer_experiment_end_to_end(tmp_path):
    from benchmarks.harness import transfer

    argv = ["--source", "acquisition", "--target", "acquisition-b", "--out", str(tmp_path / "out"),
            "--data", str(tmp_path / "data"), "--scale", "tiny", "--lock", "", "--commit",
            "worktree", "--judges", "svm", "--refiner", "acquisition", "--counts", "10",
            "--extra-train-args", TINY_TRAIN.replace("--val-fraction 0", "--val-fraction 0.2")]  # fmt: skip
    assert transfer.main(argv) == 0
    rows = json.loads((tmp_path / "out/results.json").read_text())
    assert "`--init-from` the source, 10 real" in rows and "fresh, 10 real" in rows
    assert "training-free `camera_grid`, 10 real" in rows
    for row in rows.values():
        assert 0.0 <= row["accuracy"]["svm"]["test"] <= 1.0
    init_log = (tmp_path / "out/init10/train.log").read_text()
    assert "--init-from: refiner kept" in init_log
    assert "| `--init-from` the source, 10 real | 10 |" in (tmp_path / "out/results.md").read_text()


def _bilinear_2x(image: np.ndarray) -> np.ndarray:
    """2x bilinear upsampling with half-pixel centres and clamped edges, in NumPy."""
    n = image.shape[-1]
    src = np.clip((np.arange(2 * n) + 0.5) / 2 - 0.5, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi, w = np.minimum(lo + 1, n - 1), src - np.floor(src)
    rows = image[..., lo, :] * (1 - w)[:, None] + image[..., hi, :] * w[:, None]
    return rows[..., lo] * (1 - w) + rows[..., hi] * w


def test_digits_real_splits_are_disjoint_scans_and_oracle_counts_blocks():
    from sklearn.datasets import load_digits

    case = CASES["digits"]
    scans = load_digits()
    resampled = _bilinear_2x(scans.images / 16.0)
    seen = []
    for split, n in case.counts.items():
        for k in (0, 7, 10 * n - 1):  # first, a middle one, the last of the split
            image = case.recorded(split, k, seed=0)
            match = np.flatnonzero(np.abs(resampled - image).max(axis=(1, 2)) < 1e-5)
            assert len(match) >= 1 and scans.target[match[0]] == k % 10
            seen.append(int(match[0]))
    assert len(set(seen)) == len(seen)  # no scan in two places
    rng = np.random.default_rng(0)
    params = case.sample(rng, 4, real=False)
    ink = case._bitmap(params)
    assert ink.shape == (32, 32) and ink.max() == 1.0
    assert np.array_equal(case.synthetic(params, rng), (ink[::2, ::2] > 0.5).astype(float))
    # The oracle: binarise, count 4x4 blocks (0..16), resample like the scans.
    counts = (ink > 0.5).reshape(8, 4, 8, 4).sum(axis=(1, 3)) / 16.0
    assert np.abs(case.real(params, rng) - _bilinear_2x(counts)).max() < 1e-5
