"""Network shapes, patch geometry and FLOP counts."""

import jax.numpy as jnp
import numpy as np
import pytest

from refinekit.config import TrainConfig
from refinekit.nn.models import build_models, disc_flops, patch_geometry, refiner_flops


@pytest.mark.parametrize("preset", ["local", "gaze", "hand", "tiny"])
def test_refiner_keeps_shape_and_range_and_disc_gives_a_patch_grid(preset):
    config = TrainConfig(refiner="resnet", preset=preset, blocks=1)
    refiner, disc = build_models(config, 3, seed=0)
    x = jnp.linspace(-1, 1, 2 * 35 * 55 * 3).reshape(2, 35, 55, 3)
    y = refiner(x)
    assert y.shape == x.shape and float(jnp.abs(y).max()) <= 1.0
    logits = disc(y)
    geometry = patch_geometry(config.discriminator_layers, (35, 55))
    assert logits.shape == (2, *geometry["grid"], 2)


def test_gaze_geometry_and_flops_by_hand():
    config = TrainConfig(refiner="resnet", preset="gaze")
    g = patch_geometry(config.discriminator_layers, (35, 55))
    # strides 2, 2, 1 ...: 35x55 -> 18x28 -> 9x14; field 3 -> 7 -> 15 -> 23
    assert g == {"grid": (9, 14), "receptive_field": 23, "stride": 4}
    # refiner: 3x3x1x64 + 4 blocks x 2 x 3x3x64x64 + 64x1 MACs per pixel
    macs = 9 * 64 + 8 * 9 * 64 * 64 + 64
    assert refiner_flops(config, 1, (35, 55)) == 2 * macs * 35 * 55
    assert (
        abs(refiner_flops(config, 1, (35, 55)) / 1e9 - 1.138) < 0.01
    )  # the PyTorch reference bench's figure
    d = 2 * (
        9 * 96 * 18 * 28 + 9 * 96 * 64 * 9 * 14 + 9 * 64 * 32 * 126 + 32 * 32 * 126 + 32 * 2 * 126
    )
    assert disc_flops(config, 1, (35, 55)) == d


def test_default_discriminator_is_local_by_hand():
    config = TrainConfig()
    assert config.preset == "local"
    g = patch_geometry(config.discriminator_layers, (35, 55))
    # strides 2, 1, 1, 1: 35x55 -> 18x28; field 3 -> 7, so a 16x16 image holds 8x8 patches
    assert g == {"grid": (18, 28), "receptive_field": 7, "stride": 2}
    assert patch_geometry(config.discriminator_layers, (16, 16))["grid"] == (8, 8)
    cells = 18 * 28
    d = 2 * cells * (9 * 96 + 9 * 96 * 64 + 64 * 32 + 32 * 2)
    assert disc_flops(config, 1, (35, 55)) == d
    # the refiner is the gaze one
    gaze = config.replace(preset="gaze")
    assert refiner_flops(config, 1, (35, 55)) == refiner_flops(gaze, 1, (35, 55))


def test_sample_grid_layout_and_signed_difference():
    import numpy as np

    from refinekit.training.samples import sample_grid

    syn = np.zeros((3, 8, 8, 1), np.float32)
    refined = syn.copy()
    refined[0] -= 0.5  # darker
    refined[1] += 0.25  # brighter
    real = np.ones((5, 8, 8, 1), np.float32)
    grid = sample_grid(syn, refined, real, min_cell=16)
    cell, gap = 16, 2
    assert grid.shape == (4 * (cell + gap) + gap, 3 * (cell + gap) + gap, 3)
    diff_row = gap + 2 * (cell + gap) + cell // 2
    centres = [grid[diff_row, gap + i * (cell + gap) + cell // 2, 0] for i in range(3)]
    assert centres == [
        0,
        191,
        128,
    ]  # largest change -> black; half as large brighter -> 3/4; none -> mid-gray
    assert grid[gap + 3 * (cell + gap) + 1, gap + 1, 0] == 255  # real row


def test_residual_refiner_starts_as_the_identity_and_direct_does_not():
    x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    x[0, 0, 0] = [-1.0, 1.0, 0.0]  # saturated pixels stay finite
    residual, _ = build_models(
        TrainConfig(refiner="resnet", preset="tiny", refiner_output="residual"), 3, seed=0
    )
    out = np.asarray(residual(jnp.asarray(x)))
    # tanh(atanh(0.999 x)) = 0.999 x: within 1e-3, an eighth of an 8-bit step
    np.testing.assert_allclose(out, 0.999 * x, atol=1e-5)
    direct, _ = build_models(TrainConfig(refiner="resnet", preset="tiny"), 3, seed=0)
    assert np.abs(np.asarray(direct(jnp.asarray(x))) - x).mean() > 0.1


def test_saved_configs_without_the_setting_load_as_direct():
    assert TrainConfig.from_dict({"refiner_output": "residual"}).refiner_output == "residual"
    assert TrainConfig.from_dict({}, saved=True).refiner_output == "direct"
    kept = TrainConfig.from_dict({"refiner_output": "residual"}, saved=True)
    assert kept.refiner_output == "residual"


@pytest.mark.slow
def test_residual_refiner_is_the_identity_under_the_training_xla_flags():
    # XLA_FLAGS must be set before JAX starts, so in a child process. jnp.arctanh (and the log1p
    # form, which XLA rewrites into it) was wrong (max error 1.47) under the YNNPACK eltwise
    # fusion train enables; the refiner must not use it.
    import os
    import subprocess
    import sys

    from refinekit.runtime import CPU_FLAGS, _jaxlib_at_least

    if not _jaxlib_at_least(0, 10):
        pytest.skip("older XLA builds do not know the YNNPACK flag (and train does not set it)")
    code = """
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from refinekit.config import TrainConfig
from refinekit.nn.models import build_models
x = np.random.default_rng(0).uniform(-0.9, 0.9, (32, 16, 16, 1)).astype(np.float32)
refiner, _ = build_models(TrainConfig(refiner="resnet", refiner_output="residual"), 1, seed=0)
graph, params = nnx.split(refiner, nnx.Param)
out = jax.jit(lambda p, x: nnx.merge(graph, p)(x))(params, jnp.asarray(x))  # as training runs it
print(float(np.abs(np.asarray(out) - 0.999 * x).max()))
"""
    env = {**os.environ, "XLA_FLAGS": CPU_FLAGS["train"], "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert float(done.stdout.strip().splitlines()[-1]) < 1e-5
