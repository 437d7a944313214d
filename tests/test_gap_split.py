"""The gap split (gap/split.py): what a classifier loses on real images by training on
synthetic ones, split into the content mix, refinement and the rest.

Known answers: a real set that is the synthetic set has no gap; a real set with another class
balance has a distribution part that resampling closes; the parts add up to the total; without
labelled real images the report says which parts it could not measure and why. Also: label
retention reads a pure change of look as kept and one label swapped in five as 80%.
"""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from helpers import assert_inert
from refinekit.cli import main
from refinekit.downstream import better_than, score_training_set
from refinekit.gap import inputs, photometric, reweight, split, split_advice

pytestmark = pytest.mark.full_classifiers  # what the gap split measures, at its real settings

NAMES = ("horizontal", "vertical")


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """One seed and a few dozen steps: these cases are easy, and compiling is most of the time."""
    monkeypatch.setattr(split, "SEEDS", (0,))
    monkeypatch.setattr(split, "EPOCHS", 4)
    monkeypatch.setattr(split, "STEPS", 40)


def bars(n: int, vertical: float, seed: int, blank: float = 0.0, size: int = 12):
    """A vertical or horizontal bar (class 1 with probability `vertical`) on noise; a `blank`
    fraction shows no bar, so only the class balance can tell their class."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 0.3, (n, size, size)).astype(np.float32)
    y = (rng.random(n) < vertical).astype(np.int64)
    for i in range(n):
        if rng.random() < blank:
            continue
        k = rng.integers(2, size - 2)
        if y[i]:
            x[i, :, k - 1 : k + 1] += 0.6
        else:
            x[i, k - 1 : k + 1, :] += 0.6
    return np.clip(x, 0, 1)[..., None], y


def image_set(name: str, x: np.ndarray, y: np.ndarray | None) -> inputs.ImageSet:
    names = [f"{NAMES[c]}/{i:04d}.png" for i, c in enumerate(y)] if y is not None else None
    names = names or [f"{i:04d}.png" for i in range(len(x))]
    return inputs.ImageSet(name, x, names, root=f"/data/{name}")


def by_key(section: dict) -> dict:
    return {p["key"]: p for p in section["parts"]}


def assert_adds_up(section: dict) -> None:
    parts = by_key(section)
    measured = [parts[k]["value"] for k in split.PARTS if parts[k]["measured"]]
    assert abs(sum(measured) - parts["total"]["value"]) < 1e-9
    for p in section["parts"]:
        if p["measured"]:
            assert p["low"] <= p["high"] and p["advice"]


def test_a_real_set_that_is_the_synthetic_set_has_no_gap():
    x, y = bars(60, 0.5, 0)
    syn = image_set("synthetic", x, y)
    section = split.gap_split(syn, syn, syn, True, 0, source="--real")
    parts = by_key(section)
    for key in ("total", "distribution", "refinement", "remaining"):
        assert parts[key]["low"] <= 0.0 <= parts[key]["high"], parts[key]
        assert abs(parts[key]["value"]) <= 0.05
    assert_adds_up(section)
    # The held-out real images are not trained on through their synthetic copies.
    assert section["left_out_as_test_duplicates"] == section["labelled_real"]["test"] == 30
    assert section["training_images"] == 30
    assert "No significant gap" in parts["total"]["advice"]
    assert parts["refinement"]["advice"] == "Refinement did not help a classifier here."


def test_another_class_balance_is_a_distribution_part_that_resampling_closes():
    """Real images are 80% vertical, synthetic ones 20%, and half of each show no bar: a
    classifier trained on the synthetic mix calls a blank horizontal, on the resampled mix
    vertical. (Against a balanced synthetic set a tiny CNN's call on blanks is a coin flip per
    seed; the weights test below uses one.)"""
    sx, sy = bars(120, 0.2, 10, blank=0.5)
    rx, ry = bars(160, 0.8, 20, blank=0.5)
    section = split.gap_split(
        image_set("synthetic", sx, sy), image_set("real", rx, ry), None, False, 0, source="--real"
    )
    parts = by_key(section)
    assert parts["distribution"]["low"] > 0 and parts["distribution"]["value"] >= 0.1
    assert parts["total"]["low"] > 0
    assert not parts["refinement"]["measured"] and "--refined" in parts["refinement"]["reason"]
    assert section["not_measured"] == [
        {"part": "refinement", "reason": parts["refinement"]["reason"]}
    ]
    assert_adds_up(section)
    shares = section["weights"]["classes"]
    assert abs(shares["weighted_share"]["vertical"] - shares["real_share"]["vertical"]) < 0.05
    accuracy = section["accuracy"]
    assert accuracy["reweighted"]["accuracy"] > accuracy["synthetic"]["accuracy"]
    line = split_advice.verdict_line(section)
    assert line is not None and line.startswith("Gap for a classifier on real images: +")


def test_weights_restore_an_80_20_real_balance_from_a_balanced_synthetic_set():
    sx, sy = bars(100, 0.5, 1)
    rx, ry = bars(100, 0.8, 2)
    syn_names, real_names = [NAMES[c] for c in sy], [NAMES[c] for c in ry]
    weights = reweight.fit_weights(sx, rx, syn_names, real_names)
    real_share = np.mean(ry)
    assert abs(np.sum(weights.weights * sy) / np.sum(weights.weights) - real_share) < 0.05


def test_with_a_refined_set_each_fix_is_credited_in_both_orders_and_the_parts_add_up():
    sx, sy = bars(80, 0.2, 30, blank=0.4)
    rx, ry = bars(100, 0.8, 31, blank=0.4)
    refined = image_set("refined", np.clip(sx * 0.8 + 0.1, 0, 1), sy)
    section = split.gap_split(
        image_set("synthetic", sx, sy), image_set("real", rx, ry), refined, True, 0, source="--real"
    )
    parts = by_key(section)
    assert set(section["accuracy"]) == {
        "synthetic",
        "reweighted",
        "refined",
        "reweighted_refined",
        "real",
    }
    for key in ("distribution", "refinement"):
        p = parts[key]
        assert p["measured"] and np.isclose(p["value"], (p["alone"] + p["after_the_other"]) / 2)
    assert section["not_measured"] == []
    assert_adds_up(section)


def test_without_labelled_real_images_the_report_says_what_it_could_not_measure():
    x, y = bars(20, 0.5, 3)
    unlabelled = image_set("real", x, None)
    section = split.gap_split(
        image_set("synthetic", x, y), unlabelled, None, False, 0, source="--real"
    )
    assert section["measured"] is False and "--real-labelled DIR" in section["reason"]
    assert [m["part"] for m in section["not_measured"]] == list(split_advice.NAMES)
    assert "no refined set" in section["not_measured"][2]["reason"]
    section = split.gap_split(unlabelled, unlabelled, None, False, 0, source="--real")
    assert "synthetic set has no class folders" in section["reason"]
    few = image_set("real", x[:5], np.array([0, 0, 0, 1, 1]))
    section = split.gap_split(image_set("synthetic", x, y), few, None, False, 0, source="--real")
    assert f"fewer than {split.MIN_PER_CLASS}" in section["reason"]
    assert split_advice.verdict_line(section) is None
    assert split_advice.lines(section) == [f"Gap split not measured: {section['reason']}."]


def test_the_intervals_are_downstreams_paired_bootstrap():
    x, y = bars(40, 0.5, 5)
    tx, ty = bars(30, 0.5, 6)
    good = score_training_set(x, y, tx, ty, seeds=(0,), epochs=40)
    bad = score_training_set(x, 1 - y, tx, ty, seeds=(0,), epochs=40)
    value, low, high = split.combine({"good": 1.0, "bad": -1.0}, {"good": good, "bad": bad})
    assert (value, low, high) == pytest.approx(better_than(good, bad))


def test_the_held_out_real_images_are_stratified_and_seeded():
    labels = np.r_[np.zeros(10, int), np.ones(5, int)]
    train, test = split._split(labels, seed=2)
    assert np.bincount(labels[test]).tolist() == [5, 2] or np.bincount(labels[test]).tolist() == [
        5,
        3,
    ]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 15
    assert np.array_equal(split._split(labels, seed=2)[1], test)


def part(key: str, value: float, low: float, high: float) -> dict:
    return {"key": key, "measured": True, "value": value, "low": low, "high": high}


def test_one_line_of_advice_per_part():
    advice = split_advice.advice
    text = advice(part("distribution", 0.2, 0.1, 0.3), "syn dir", "real")
    assert "refinekit resample --synthetic 'syn dir' --real real --out weights.json" in text
    assert "would not help" in advice(part("distribution", 0.01, -0.02, 0.04))
    small = advice(part("refinement", 0.01, -0.03, 0.05))
    assert small == "Refinement did not help a classifier here."
    assert "keep it" in advice(part("refinement", 0.1, 0.05, 0.15))
    assert "label conventions" in advice(part("remaining", 0.2, 0.1, 0.3))
    assert "scores 20.0% less" in advice(part("total", 0.2, 0.1, 0.3))
    both = dict(part("distribution", 0.02, -0.02, 0.06), alone=-0.03, after_the_other=0.07)
    assert advice(both).endswith(
        "It adds -3.0% alone and +7.0% after the other fix: the two interact."
    )
    missing = {"key": "refinement", "measured": False, "reason": "no refined set"}
    assert "--refined DIR" in advice(missing)


def test_the_html_section_draws_the_waterfall_and_escapes_names():
    from refinekit.gap.report_split import split_section

    accuracy = {
        name: {"accuracy": a, "interval": [a - 0.05, a + 0.05], "per_seed": [a], "test_images": 40}
        for name, a in (("synthetic", 0.6), ("reweighted", 0.7), ("real", 0.9))
    }
    parts = [
        dict(part("total", 0.3, 0.2, 0.4), name="total gap", advice="a"),
        dict(part("distribution", 0.1, 0.05, 0.15), name="content mix", advice="b"),
        {"key": "refinement", "name": "refinement", "measured": False, "reason": "none"},
        dict(part("remaining", 0.2, 0.1, 0.3), name="remaining", advice="<c>"),
    ]
    section = {
        "measured": True,
        "accuracy": accuracy,
        "parts": parts,
        "classifier": {"seeds": [0], "level": 0.9},
        "training_images": 40,
        "labelled_real": {"test": 40, "source": "--real"},
        "adds_up": "they add up",
        "caution": None,
    }
    html = split_section({"gap_split": section})
    assert_inert(html, ("<c>", "+ content mix", "trained on real"))
    assert "<svg" in html and "+30.0% [+20.0%, +40.0%]" in html and "&lt;c&gt;" in html
    assert "not measured" in html and "<c>" not in html
    missing = {
        "measured": False,
        "reason": "no <labels>",
        "not_measured": [
            {"part": "total", "reason": "no <labels>"},
            {"part": "remaining", "reason": "no <labels>"},
        ],
    }
    shown = split_section({"gap_split": missing})
    assert "<li>total gap, remaining (labels and the rest): no &lt;labels&gt;</li>" in shown


def write(folder: Path, x: np.ndarray, y: np.ndarray | None) -> Path:
    for i, image in enumerate(x):
        name = f"{NAMES[y[i]]}/{i:03d}.png" if y is not None else f"{i:03d}.png"
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / name, np.round(image[..., 0] * 255).astype(np.uint8))
    return folder


def test_a_real_labelled_folder_without_classes_exits_2_with_one_line(tmp_path, capsys):
    x, y = bars(24, 0.5, 7, size=16)
    syn, flat = write(tmp_path / "syn", x, y), write(tmp_path / "flat", x, None)
    argv = ["gap-report", "--real", str(flat), "--synthetic", str(syn)]
    assert main([*argv, "--real-labelled", str(flat), "--json", str(tmp_path / "r.json")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--real-labelled" in lines[0] and "no class folders" in lines[0]
    assert not (tmp_path / "r.json").exists()
    assert main([*argv, "--real-labelled", str(tmp_path / "missing")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_gap_report_with_real_labelled_images_through_the_cli(tmp_path, capsys):
    """The whole report on files: --real-labelled is the synthetic folder itself, so the
    classifier gap is 0; the JSON has the table, the HTML the bar, the terminal the lines."""
    x, y = bars(40, 0.5, 8, size=16)
    syn = write(tmp_path / "syn", x, y)
    real = write(tmp_path / "real", bars(40, 0.5, 9, size=16)[0], None)
    out = tmp_path / "out"
    out.mkdir()
    argv = ["gap-report", "--real", str(real), "--synthetic", str(syn), "--bootstrap", "20"]
    argv += ["--real-labelled", str(syn), "--json", str(out / "gap.json")]
    assert main([*argv, "--html", str(out / "gap.html")]) == 0
    document = json.loads((out / "gap.json").read_text())
    section = document["gap_split"]
    assert section["measured"] and section["labelled_real"]["source"] == "--real-labelled"
    total = by_key(section)["total"]
    assert total["low"] <= 0.0 <= total["high"]
    assert_adds_up(section)
    assert document["verdict"]["lines"][-1].startswith("Gap for a classifier on real images")
    html = (out / "gap.html").read_text()
    assert "Where the gap is, for a classifier" in html and "+ content mix" in html
    assert_inert(html, ("trained on synthetic", "trained on real"))
    assert "Gap split (accuracy on held-out real images" in capsys.readouterr().out


def shapes(seed: int, per_class: int = 20, size: int = 16):
    """A vertical bar, a cross or a square, bright on dark (three classes)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for c in range(3):
        for _ in range(per_class):
            image = np.full((size, size), 0.15 + 0.1 * rng.random(), np.float32)
            value = 0.75 + 0.2 * rng.random()
            yy, xx = rng.integers(6, 10, 2)
            if c == 0:
                image[2:14, xx - 2 : xx + 2] = value
            elif c == 1:
                image[yy - 1 : yy + 1, 2:14] = value
                image[2:14, xx - 1 : xx + 1] = value
            else:
                image[yy - 4 : yy + 4, xx - 4 : xx + 4] = value
            images.append(image + rng.normal(0, 0.02, image.shape))
            labels.append(c)
    return np.clip(np.stack(images), 0, 1)[..., None].astype(np.float32), np.array(labels)


@pytest.mark.slow
def test_retention_reads_a_change_of_look_as_kept_and_one_swap_in_five_as_80_percent():
    """What gap-report's retention classifiers (trained on photometric variants) read: blur,
    noise and contrast alone keep the labels; a refiner that shows another class in one image
    of five keeps 80% of them."""
    from refinekit.gap.scores import label_retention

    synthetic, labels = shapes(0)
    rng = np.random.default_rng(1)
    looked = photometric.blur(synthetic, np.full(len(synthetic), 1.0, np.float32))
    looked = 0.5 + (looked - 0.5) * 0.6 + rng.normal(0, 0.05, looked.shape)
    looked = np.clip(looked, 0, 1).astype(np.float32)
    assert label_retention(synthetic, labels, looked, seed=0, photometric=True) >= 0.95
    swapped = synthetic.copy()
    for i in range(0, len(synthetic), 5):
        other = np.flatnonzero(labels == (labels[i] + 1) % 3)
        swapped[i] = synthetic[other[(i // 5) % len(other)]]
    kept = label_retention(synthetic, labels, swapped, seed=0, photometric=True)
    assert abs(kept - 0.8) <= 0.05
