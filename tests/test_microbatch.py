"""Forward passes in micro-batches: the same numbers as one pass, chosen sizes, the CLI flag."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from refinekit.config import TrainConfig
from refinekit.inference.refiner import Refiner
from refinekit.nn import microbatch
from refinekit.nn.models import build_models


@pytest.mark.parametrize("total, size", [(8, 4), (10, 4), (3, 4), (7, 1), (6, 0)])
def test_forward_gives_each_image_what_a_whole_batch_gives(total, size):
    x = np.random.default_rng(0).normal(size=(total, 3, 5, 2)).astype(np.float32)
    w = np.arange(1, 3, dtype=np.float32)

    def fn(batch):  # per image and non-linear; checks at trace time what it is given
        assert batch.shape[0] == (size if 0 < size < total else total)
        return jnp.tanh(batch @ w)[..., None]

    out = np.asarray(jax.jit(lambda b: microbatch.forward(fn, b, size))(x))
    np.testing.assert_allclose(out, np.tanh(x @ w)[..., None], rtol=1e-6)
    assert out.shape == (total, 3, 5, 1)


def test_auto_size_is_a_power_of_two_of_about_8192_pixels():
    assert microbatch.auto_size(35, 55) == 4  # 8192 // 1925 = 4
    assert microbatch.auto_size(32, 48) == 4  # 5 -> 4
    assert microbatch.auto_size(64, 64) == 2
    assert microbatch.auto_size(128, 128) == 1
    assert microbatch.auto_size(1024, 1024) == 1
    assert microbatch.auto_size(16, 16) == 32
    # what forward really uses: a micro-batch as large as the batch is one pass
    assert [microbatch.effective(s, 8) for s in (0, 1, 4, 7, 8, 32)] == [0, 1, 4, 7, 0, 0]


def test_resolve_keeps_an_explicit_size_and_picks_auto_on_one_cpu_device():
    assert microbatch.resolve(0, 35, 55) == 0
    assert microbatch.resolve(3, 35, 55) == 3
    single_cpu = jax.default_backend() == "cpu" and jax.local_device_count() == 1
    assert microbatch.resolve(None, 35, 55) == (4 if single_cpu else 0)


def test_refiner_with_micro_batches_matches_whole_batches():
    config = TrainConfig(refiner="resnet", preset="tiny", size=(16, 16), channels=1)
    refiner, _ = build_models(config, 1, seed=0)
    _, params = nnx.split(refiner, nnx.Param)
    images = np.random.default_rng(1).uniform(size=(13, 16, 16, 1)).astype(np.float32)
    whole = Refiner(config, params, {"test": 1}, batch_size=16, micro_batch=0)(images)
    split = Refiner(config, params, {"test": 1}, batch_size=16, micro_batch=4)
    assert split.micro_batch_for(16, 16) == 4
    np.testing.assert_allclose(split(images), whole, atol=1e-5)


def test_dispatch_then_wait_is_a_call():
    """refine starts batch k+1 before it waits for batch k: both waits give what calls give."""
    config = TrainConfig(refiner="resnet", preset="tiny", size=(16, 16), channels=1)
    refiner, _ = build_models(config, 1, seed=0)
    _, params = nnx.split(refiner, nnx.Param)
    model = Refiner(config, params, {"test": 1}, batch_size=4)
    rng = np.random.default_rng(2)
    first, second = rng.uniform(size=(6, 16, 16, 1)), rng.uniform(size=(3, 12, 8, 1))
    wait_first = model.dispatch(first)
    wait_second = model.dispatch(second)
    np.testing.assert_array_equal(wait_first(), model(first))
    np.testing.assert_array_equal(wait_second(), model(second))
    assert wait_first().shape == (6, 16, 16, 1) and wait_second().dtype == np.float32
    assert model.dispatch(np.zeros((0, 16, 16, 1), np.float32))().shape == (0, 16, 16, 1)


@pytest.mark.slow
def test_training_with_micro_batched_forward_passes_matches_whole_batches(tmp_path, monkeypatch):
    """The discriminator's refined batch comes from micro-batches of 2 here; the model trained
    is the same as with whole batches (16x16 images are below the default's cut-off)."""
    from conftest import write_images
    from helpers import ARGS, _final_state
    from refinekit.cli import main
    from refinekit.training.steps import StepFunctions

    syn = write_images(tmp_path / "syn", 16, (16, 16), 0, smooth=True)
    real = write_images(tmp_path / "real", 16, (16, 16), 1, smooth=False)
    common = ["train", "--synthetic", str(syn), "--real", str(real), *ARGS]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    sizes = []
    original = StepFunctions.__post_init__

    def spy(self):
        original(self)
        sizes.append(self.forward_micro_batch)

    monkeypatch.setattr(StepFunctions, "__post_init__", spy)
    monkeypatch.setattr(microbatch, "PIXELS", 512)
    assert main([*common, "--out", str(tmp_path / "split")]) == 0
    single_cpu = jax.default_backend() == "cpu" and jax.local_device_count() == 1
    assert sizes and sizes[0] == (2 if single_cpu else 0)
    (s1, a), (s2, b) = _final_state(tmp_path / "whole"), _final_state(tmp_path / "split")
    assert s1 == s2
    for x, y in zip(
        jax.tree.leaves(a.refiner) + jax.tree.leaves(a.disc),
        jax.tree.leaves(b.refiner) + jax.tree.leaves(b.disc),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)


def test_refine_refuses_a_negative_micro_batch(tmp_path, capsys):
    from refinekit.cli import main

    (tmp_path / "in").mkdir()
    code = main(
        [
            "refine",
            str(tmp_path / "in"),
            str(tmp_path / "out"),
            "--model",
            "m.npz",
            "--micro-batch",
            "-1",
        ]
    )
    assert code == 2
    assert "--micro-batch" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
