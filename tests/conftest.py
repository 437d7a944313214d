"""Shared test set-up: CPU JAX, and small image folders written as real files."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The suite compiles hundreds of tiny programs and compiling is most of its time; LLVM at -O2
# compiles them faster than XLA's default -O3 (2-core machine, back to back: a tiny run 14.6 /
# 13.5 s -> 11.6 s, the stress test 44 / 41 s -> 35 s; whole suite 836 s, against 1000 s the day
# before without it). Users keep the default: at real sizes -O2 runs slower (`refinekit bench`,
# gaze 35x55: 82 vs 87-94 training images/s). Child processes inherit it.
# XLA:CPU's newer MLIR fusion emitters compile slower than the classic ones for these tiny
# programs, at the same run time (back to back: the stress test's compiles 19.0-19.4 s ->
# 11.9-12.1 s, the test 57-60 s -> 51-52 s).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "")
        + " --xla_backend_optimization_level=2 --xla_cpu_use_fusion_emitters=false"
    ).strip()

from pathlib import Path  # noqa: E402

import imageio.v3 as iio  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def write_images(
    folder: Path, count: int, shape: tuple, seed: int, *, smooth: bool, dtype=np.uint8, ext=".png"
):
    """Write `count` random images; smooth ones look "synthetic", noisy ones "real"."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    top = np.iinfo(dtype).max
    for i in range(count):
        base = rng.random(shape)
        if smooth:
            base = (
                base + np.roll(base, 1, 0) + np.roll(base, 1, 1) + np.roll(base, (1, 1), (0, 1))
            ) / 4
        iio.imwrite(folder / f"img_{i:03d}{ext}", np.round(base * top).astype(dtype))
    return folder


@pytest.fixture
def gray16(tmp_path):
    """16x16 grayscale synthetic/real folders."""
    syn = write_images(tmp_path / "syn", 24, (16, 16), 0, smooth=True)
    real = write_images(tmp_path / "real", 24, (16, 16), 1, smooth=False)
    return syn, real


TINY = [
    # the ResNet's training (the default, auto, fits candidates: test_auto_refiner)
    "--refiner",
    "resnet",
    "--preset",
    "tiny",
    "--batch-size",
    "4",
    "--log-every",
    "5",
    "--sample-every",
    "10",
    "--checkpoint-every",
    "10",
]


@pytest.fixture(scope="session", autouse=True)
def _compile_cache(tmp_path_factory):
    """One persistent XLA cache for the session: identical programs compile once across tests."""
    os.environ["REFINEKIT_COMPILE_CACHE"] = str(tmp_path_factory.mktemp("xla-cache"))
    from refinekit.runtime import setup

    setup()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny RGB refiner trained for 6 + 4 + 6 steps on 16x16 images; checkpoints at 10 and 16.

    Shared by the refine tests; tests that damage a run copy it first.
    """
    from refinekit.cli import main

    root = tmp_path_factory.mktemp("trained")
    syn = write_images(root / "syn", 16, (16, 16, 3), 0, smooth=True)
    real = write_images(root / "real", 16, (16, 16, 3), 1, smooth=False)
    run = root / "run"
    args = [
        "train",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--out",
        str(run),
        "--steps",
        "6",
        *TINY,
        "--pretrain-refiner-steps",
        "6",
        "--pretrain-disc-steps",
        "4",
    ]
    assert main(args) == 0
    return run


@pytest.fixture(autouse=True)
def small_classifiers(request, monkeypatch):
    """The downstream CNN, gap-report's gap split and its domain classifier at a few steps, one
    seed, so a test that merely passes through them stays fast; tests of what they measure are
    marked `full_classifiers` and keep the real settings. (Module-scoped fixtures are set up
    before this one, so they keep the real settings too.)"""
    if request.node.get_closest_marker("full_classifiers"):
        yield
        return
    from refinekit.downstream import score
    from refinekit.gap import classifier, split

    monkeypatch.setattr(score, "SEEDS", (0,))
    monkeypatch.setattr(score, "EPOCHS", 3)
    monkeypatch.setattr(score, "MAX_TRAIN", 128)
    monkeypatch.setattr(score, "MIN_STEPS", 12)
    monkeypatch.setattr(split, "SEEDS", (0,))
    monkeypatch.setattr(split, "EPOCHS", 3)
    monkeypatch.setattr(split, "TRAINING", 128)
    monkeypatch.setattr(split, "STEPS", 12)
    # A few checks of 10 steps instead of 200-600 steps; the domain scores of one process are
    # cached by their inputs, so the cache is emptied on both sides of a test trained so.
    monkeypatch.setattr(classifier, "MIN_EARLY_STEPS", 20)
    monkeypatch.setattr(classifier, "MAX_EARLY_STEPS", 60)
    monkeypatch.setattr(classifier, "EVALUATE_EVERY", 10)
    classifier.clear_domain_cache()
    yield
    classifier.clear_domain_cache()
