"""Winograd F(2x2, 3x3) convolutions: the numbers of lax's convolution, and only where they pay."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from refinekit.config import TrainConfig
from refinekit.inference.refiner import Refiner
from refinekit.nn import winograd
from refinekit.nn.models import build_models

NHWC = ("NHWC", "HWIO", "NHWC")


def direct(x, kernel, padding="SAME", strides=(1, 1), **kw):
    return jax.lax.conv_general_dilated(
        x,
        kernel,
        strides,
        padding,
        dimension_numbers=NHWC,
        precision=jax.lax.Precision.HIGHEST,
        **kw,
    )


def numpy_conv3x3(x, kernel):
    """The definition: out[n, i, j, o] = sum over di, dj, c of x[n, i+di-1, j+dj-1, c] k[di, dj, c, o]."""
    n, h, w, _ = x.shape
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = np.zeros((n, h, w, kernel.shape[3]))
    for di in range(3):
        for dj in range(3):
            out += padded[:, di : di + h, dj : dj + w] @ kernel[di, dj].astype(np.float64)
    return out


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 4, 3), (2, 2, 3, 5, 6), (3, 5, 7, 8, 2), (1, 16, 16, 3, 4), (2, 6, 4, 1, 1)]
)
def test_conv3x3_is_the_convolution(shape):
    n, h, w, cin, cout = shape  # odd and even sizes: tiles are padded and cropped
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=(n, h, w, cin)).astype(np.float32)
    kernel = rng.normal(size=(3, 3, cin, cout)).astype(np.float32)
    got = np.asarray(jax.jit(winograd.conv3x3)(x, kernel))
    want = numpy_conv3x3(x, kernel)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


def test_the_transforms_are_lavin_and_grays():
    # F(2, 3) on one tile by hand: d = (1, 2, 3, 4), g = (1, 1, 1) -> y = (1+2+3, 2+3+4)
    d, g = np.array([1.0, 2, 3, 4]), np.array([1.0, 1, 1])
    assert (winograd.A_T @ ((winograd.G @ g) * (winograd.B_T @ d))).tolist() == [6.0, 9.0]


def _traced_ops(fn, *args):
    return {eqn.primitive.name for eqn in jax.make_jaxpr(fn)(*args).eqns}


def test_winograd_route_only_where_it_was_measured_to_pay():
    rng = np.random.default_rng(0)
    x64 = jnp.asarray(rng.normal(size=(4, 35, 55, 64)), jnp.float32)
    k64 = jnp.asarray(rng.normal(size=(3, 3, 64, 64)) * 0.05, jnp.float32)
    conv = winograd.conv_general_dilated

    # the refiner's case: 3x3 64->64, stride 1, SAME, 7,700 pixels
    ops = _traced_ops(lambda x, k: conv(x, k, (1, 1), "SAME", dimension_numbers=NHWC), x64, k64)
    assert "conv_general_dilated" not in ops and "dot_general" in ops
    got = conv(x64, k64, (1, 1), "SAME", dimension_numbers=NHWC)
    np.testing.assert_allclose(got, direct(x64, k64), atol=1e-5 * float(jnp.abs(got).max()))
    explicit = conv(x64, k64, (1, 1), [(1, 1), (1, 1)], dimension_numbers=NHWC)
    np.testing.assert_allclose(explicit, got, atol=1e-6)

    # everything else goes to lax unchanged (bit for bit)
    others = {
        "stride 2": (x64, k64, dict(strides=(2, 2))),
        "VALID": (x64, k64, dict(padding="VALID")),
        "32 channels": (x64[..., :32], k64[:, :, :32, :], {}),
        "too many pixels": (jnp.concatenate([x64, x64]), k64, {}),  # 15,400 > MAX_PIXELS
        "5x5": (x64, jnp.ones((5, 5, 64, 8)), {}),
        "bf16": (x64.astype(jnp.bfloat16), k64.astype(jnp.bfloat16), {}),
        "dilated": (x64, k64, dict(rhs_dilation=(2, 2))),
    }
    for name, (x, k, kw) in others.items():
        strides, padding = kw.pop("strides", (1, 1)), kw.pop("padding", "SAME")

        def call(x, k, strides=strides, padding=padding, kw=kw):
            return conv(x, k, strides, padding, dimension_numbers=NHWC, **kw)

        assert "conv_general_dilated" in _traced_ops(call, x, k), name
        want = jax.lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=NHWC, **kw)
        np.testing.assert_array_equal(
            np.asarray(call(x, k), np.float32), np.asarray(want, np.float32), err_msg=name
        )


def test_refiner_with_winograd_matches_direct_convolutions(monkeypatch):
    traced = []
    conv3x3 = winograd.conv3x3
    monkeypatch.setattr(
        winograd, "conv3x3", lambda *a, **k: traced.append(a[0].shape) or conv3x3(*a, **k)
    )
    config = TrainConfig(refiner="resnet", preset="tiny", width=64, size=(16, 16), channels=1)
    refiner, _ = build_models(config, 1, seed=0)
    _, params = nnx.split(refiner, nnx.Param)
    images = np.random.default_rng(1).uniform(size=(9, 16, 16, 1)).astype(np.float32)
    fast = Refiner(config, params, {"test": 1}, batch_size=16, micro_batch=8, winograd=True)
    plain = Refiner(config, params, {"test": 1}, batch_size=16, micro_batch=8, winograd=False)
    assert fast.winograd and not plain.winograd
    np.testing.assert_allclose(fast(images), plain(images), atol=1e-5)
    assert traced == [(8, 16, 16, 64)] * 2  # the block's two 64->64 convolutions, traced once
    # the default: on for the CPU backend
    assert Refiner(config, params, {"test": 1}, batch_size=16).winograd == (
        jax.default_backend() == "cpu"
    )


@pytest.mark.parametrize(
    "flag, expected",
    [("--no-winograd", False), ("--winograd", True), (None, jax.default_backend() == "cpu")],
)
def test_bench_reports_the_convolution_route(capsys, flag, expected):
    import json

    from refinekit.cli import main

    args = [
        "bench",
        "--mode",
        "refine",
        "--preset",
        "tiny",
        "--size",
        "16",
        "16",
        "--refine-batch",
        "4",
        "--repeats",
        "1",
        "--json",
    ]
    assert main(args + ([flag] if flag else [])) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["mode"] == "refine" and result["winograd"] is expected
