"""The SimGAN networks (Flax NNX): a fully-convolutional ResNet refiner and a local patch
discriminator. Images are NHWC float in [-1, 1].
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from ..config import DiscLayers, TrainConfig
from .winograd import conv_general_dilated as winograd_conv


class ResBlock(nnx.Module):
    """Two k x k convolutions with an identity skip: relu(x + conv(relu(conv(x))))."""

    def __init__(
        self, width: int, kernel: int, dtype, rngs: nnx.Rngs, conv_fn=jax.lax.conv_general_dilated
    ):
        conv = dict(
            kernel_size=(kernel, kernel),
            padding="SAME",
            dtype=dtype,
            rngs=rngs,
            conv_general_dilated=conv_fn,
        )
        self.conv1 = nnx.Conv(width, width, **conv)
        self.conv2 = nnx.Conv(width, width, **conv)

    def __call__(self, x: jax.Array) -> jax.Array:
        y = jax.nn.relu(self.conv1(x))
        return jax.nn.relu(x + self.conv2(y))


class Refiner(nnx.Module):
    """conv k x k -> width + ReLU, `blocks` ResNet blocks, conv 1x1 -> channels, tanh.

    `residual` (--refiner-output residual): R(x) = tanh(atanh(x) + f(x)), the last conv
    zero-initialised, so R starts as the identity and f learns only the change; the default is
    the paper's direct tanh(f(x)) (docs/training.md compares them).

    No striding, pooling or normalisation: it runs on images of any size. `conv_fn` computes the
    convolutions (`winograd.conv_general_dilated` for faster forward passes on CPU).
    """

    def __init__(
        self,
        channels: int,
        width: int,
        blocks: int,
        kernel: int,
        *,
        dtype=None,
        rngs: nnx.Rngs,
        conv_fn=jax.lax.conv_general_dilated,
        residual: bool = False,
    ):
        conv = dict(padding="SAME", dtype=dtype, rngs=rngs, conv_general_dilated=conv_fn)
        self.residual = residual
        self.conv_in = nnx.Conv(channels, width, (kernel, kernel), **conv)
        self.blocks = nnx.List(
            [ResBlock(width, kernel, dtype, rngs, conv_fn) for _ in range(blocks)]
        )
        self.conv_out = nnx.Conv(width, channels, (1, 1), dtype=dtype, rngs=rngs)
        if residual:  # f starts at 0, so R starts as the identity
            self.conv_out.kernel[...] = jnp.zeros_like(self.conv_out.kernel[...])

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.forward_with_features(x)[0]

    def forward_with_features(self, x: jax.Array) -> tuple[jax.Array, list[jax.Array]]:
        """(R(x), hidden maps): the first conv's and every block's output, each (N, H, W, width).

        PatchNCE (content.py) compares these maps of x and of R(x) location by location.
        """
        h = jax.nn.relu(self.conv_in(x))
        hidden = [h]
        for block in self.blocks:
            h = block(h)
            hidden.append(h)
        out = self.conv_out(h).astype(jnp.float32)
        if self.residual:
            # atanh as log(1 + y) - log(1 - y): XLA:CPU's YNNPACK eltwise fusion, which train
            # enables (runtime.py), miscomputes atanh (errors up to 1.47), and XLA rewrites the
            # log1p form into atanh; this form stays logs (tests/test_models.py, under jit).
            # (1 - 1e-3) keeps it finite at -1 and 1; 1e-3 is an eighth of an 8-bit step.
            y = x.astype(jnp.float32) * (1.0 - 1e-3)
            out = out + 0.5 * (jnp.log(1.0 + y) - jnp.log(1.0 - y))
        return jnp.tanh(out), hidden


class PatchDiscriminator(nnx.Module):
    """Convolutions and max-pools with ReLUs between; output (N, h, w, 2) logits per patch.

    Index 1 is "real", index 0 "refined". Every location judges one receptive-field patch.

    With `classes` > 0 it is a projection discriminator (Miyato & Koyama 2018) at every patch:
    the "real" logit gains <embed[y], phi(x)>, phi(x) the features entering the last conv, so
    each class's patches are compared with that class's real patches. The embedding starts at
    zero (an unconditional discriminator); images with label -1 get no projection term.
    """

    def __init__(
        self,
        channels: int,
        layers: DiscLayers,
        *,
        dtype=None,
        rngs: nnx.Rngs,
        classes: int = 0,
    ):
        self.layers = layers
        convs = []
        features = channels
        for layer in layers:
            if layer[0] == "conv":
                _, k, s, out = layer
                convs.append(
                    nnx.Conv(
                        features,
                        out,
                        (k, k),
                        strides=(s, s),
                        padding="SAME",
                        dtype=dtype,
                        rngs=rngs,
                    )
                )
                features = out
        self.convs = nnx.List(convs)
        self.embed = (
            nnx.Param(jnp.zeros((classes, convs[-1].in_features), jnp.float32)) if classes else None
        )

    def __call__(self, x: jax.Array, labels: jax.Array | None = None) -> jax.Array:
        """x: (N, H, W, C) -> logits (N, h, w, 2); labels: int (N,), used with `classes` > 0."""
        convs = iter(self.convs)
        last = len(self.convs) - 1
        done = 0
        phi = x
        for layer in self.layers:
            if layer[0] == "pool":
                _, k, s = layer
                x = nnx.max_pool(x, (k, k), strides=(s, s), padding="SAME")
            else:
                phi = x
                x = next(convs)(x)
                if done < last:
                    x = jax.nn.relu(x)
                done += 1
        logits = x.astype(jnp.float32)
        if self.embed is None or labels is None:
            return logits
        return logits + projection_term(phi.astype(jnp.float32), self.embed[...], labels)


def projection_term(phi: jax.Array, embed: jax.Array, labels: jax.Array) -> jax.Array:
    """(N, h, w, 2) to add to the logits: <embed[y], phi> on the "real" logit, 0 on "refined".

    phi: (N, h, w, F) features; embed: (K, F); labels: int (N,), -1 = no class (no term).
    """
    rows = embed[jnp.maximum(labels, 0)] * (labels >= 0)[:, None]
    inner = jnp.einsum("nhwf,nf->nhw", phi, rows)
    return jnp.stack([jnp.zeros_like(inner), inner], axis=-1)


def build_models(
    config: TrainConfig, channels: int, seed: int, winograd: bool = False, classes: int = 0
) -> tuple[nnx.Module, PatchDiscriminator]:
    """The refiner (refiners.build_refiner: the kind `config.refiner` names) and the discriminator, initialised from `seed`. `winograd`: the refiner's 3x3
    convolutions go through `winograd.conv_general_dilated` (same parameters; forward passes only).
    `classes` > 0: a projection discriminator over that many classes."""
    from ..refiners import build_refiner

    dtype = jnp.bfloat16 if config.precision == "bf16" else None
    rngs = nnx.Rngs(seed)
    conv_fn = winograd_conv if winograd else jax.lax.conv_general_dilated
    refiner = build_refiner(config, channels, rngs=rngs, dtype=dtype, conv_fn=conv_fn)
    disc = PatchDiscriminator(
        channels, config.discriminator_layers, dtype=dtype, rngs=rngs, classes=classes
    )
    return refiner, disc


def patch_geometry(layers: DiscLayers, size: tuple[int, int]) -> dict[str, object]:
    """The discriminator's output grid and each patch's receptive field and stride (pixels)."""
    h, w = size
    field, jump = 1, 1
    for layer in layers:
        k, s = layer[1], layer[2]
        field += (k - 1) * jump
        jump *= s
        h, w = math.ceil(h / s), math.ceil(w / s)  # SAME padding
    return {"grid": (h, w), "receptive_field": field, "stride": jump}


def refiner_flops(config: TrainConfig, channels: int, size: tuple[int, int]) -> float:
    """Multiply-adds x 2 of one refiner forward pass on one image (convolutions only)."""
    h, w = size
    k, width = config.refiner_kernel, config.refiner_width
    macs = (
        k * k * channels * width
        + config.refiner_blocks * 2 * k * k * width * width
        + width * channels
    )
    return 2.0 * macs * h * w


def disc_flops(config: TrainConfig, channels: int, size: tuple[int, int]) -> float:
    """Multiply-adds x 2 of one discriminator forward pass on one image (convolutions only)."""
    h, w = size
    features, total = channels, 0.0
    for layer in config.discriminator_layers:
        k, s = layer[1], layer[2]
        h, w = math.ceil(h / s), math.ceil(w / s)
        if layer[0] == "conv":
            total += k * k * features * layer[3] * h * w
            features = layer[3]
    return 2.0 * total
