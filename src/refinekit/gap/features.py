"""Features for the distribution metrics: an ensemble of frozen, randomly initialised conv nets.

Nothing is downloaded: the weights are drawn from fixed NumPy seeds, and their SHA-256 is
recorded in every report (and pinned in a test), so two reports with the same hash used the
same features. Random features are only a proxy for perceptual ones (Inception features in
FID/KID): they measure low-level statistics (texture, noise, edges, colour) well and
semantics hardly at all.

Each net: three stride-2 k x k convolutions (16, 32, 32 channels) with ReLUs, then the spatial
mean of the last layer. Each image's per-channel mean is removed and every first-layer filter
has zero mean over its window (per input channel), so the features respond to structure (edges,
texture, grain, blur) rather than to the overall brightness and colour, which otherwise swamp
them (with plain He-normal filters a strong blur moved them by less than the real-vs-real
spread); brightness and colour have their own metrics (histograms, colour moments). The ensemble uses kernel sizes 3, 5 and 7, so the three nets see
patches of 15, 29 and 43 pixels. The output is the concatenation: 3 x 32 = 96 features (few
enough that the Frechet covariance is usable from a few hundred images).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..io.pixels import pad_to_batch

NET_SEEDS = (0, 1, 2)
KERNEL_SIZES = (3, 5, 7)
WIDTHS = (16, 32, 32)
IN_CHANNELS = 3  # gray input uses the kernels summed over colour (= gray repeated to RGB)
FEATURE_DIM = len(NET_SEEDS) * WIDTHS[-1]
DESCRIPTION = (
    f"{len(NET_SEEDS)} frozen random conv nets (NumPy seeds {list(NET_SEEDS)}, kernels "
    f"{list(KERNEL_SIZES)}, stride-2 layers of {list(WIDTHS)} channels with ReLU, He-normal "
    "weights, zero-mean first-layer filters, no biases) on images with their per-channel mean "
    f"removed, spatial mean of the last layer: {FEATURE_DIM} features, "
    "standardised with the real set's mean and standard deviation"
)


@dataclass(frozen=True)
class FeatureNets:
    """The frozen weights: kernels[net][layer] is float32 (k, k, in, out)."""

    kernels: tuple[tuple[np.ndarray, ...], ...]

    def sha256(self) -> str:
        """SHA-256 over every kernel's float32 bytes, nets and layers in order."""
        digest = hashlib.sha256()
        for net in self.kernels:
            for kernel in net:
                digest.update(np.ascontiguousarray(kernel, dtype="<f4").tobytes())
        return digest.hexdigest()


@lru_cache(maxsize=1)
def feature_nets() -> FeatureNets:
    """The ensemble's weights, drawn once from fixed seeds (He-normal: std sqrt(2 / fan_in));
    first-layer filters have their spatial mean removed per input channel (zero DC response)."""
    nets = []
    for seed, k in zip(NET_SEEDS, KERNEL_SIZES, strict=True):
        rng = np.random.default_rng(seed)
        layers: list[np.ndarray] = []
        fan_in_channels = IN_CHANNELS
        for width in WIDTHS:
            std = np.sqrt(2.0 / (k * k * fan_in_channels))
            kernel = rng.standard_normal((k, k, fan_in_channels, width)) * std
            if not layers:
                kernel = kernel - kernel.mean(axis=(0, 1), keepdims=True)
            layers.append(kernel.astype(np.float32))
            fan_in_channels = width
        nets.append(tuple(layers))
    return FeatureNets(tuple(nets))


def _adapt_first_layer(kernels, channels: int):
    """Gray images: sum the RGB input kernels, exactly like repeating gray to three channels."""
    if channels == IN_CHANNELS:
        return kernels
    if channels == 1:
        return tuple((net[0].sum(axis=2, keepdims=True),) + tuple(net[1:]) for net in kernels)
    raise ValueError(f"feature nets take 1 or 3 channels, not {channels}")


@lru_cache(maxsize=4)
def _extractor(channels: int) -> Callable:
    """A jitted (kernels, images NxHxWxC in [0, 1]) -> N x FEATURE_DIM function."""
    import jax
    import jax.numpy as jnp

    def features(kernels, images):
        x0 = (images - jnp.mean(images, axis=(1, 2), keepdims=True)) * 2.0
        outputs = []
        for net in kernels:
            x = x0
            for kernel in net:
                x = jax.lax.conv_general_dilated(
                    x,
                    kernel,
                    window_strides=(2, 2),
                    padding="SAME",
                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                )
                x = jax.nn.relu(x)
            outputs.append(jnp.mean(x, axis=(1, 2)))
        return jnp.concatenate(outputs, axis=-1)

    return jax.jit(features)


def extract_features(
    images: np.ndarray,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Random-net features of float32 NxHxWxC images in [0, 1] -> float64 N x FEATURE_DIM.

    Batches have a fixed size (the last is padded), so the function compiles once per image
    shape, and each image's features do not depend on which others share its batch.
    `on_batch(n)` is called after each batch with the number of images done.
    """
    import jax

    channels = images.shape[-1]
    kernels = jax.device_put(_adapt_first_layer(feature_nets().kernels, channels))
    run = _extractor(channels)
    out = np.empty((len(images), FEATURE_DIM), np.float64)
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        real = len(batch)
        out[start : start + real] = np.asarray(run(kernels, pad_to_batch(batch, batch_size)))[:real]
        if on_batch is not None:
            on_batch(start + real)
    return out


def standardiser(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature of `reference` (near-constant features keep 1)."""
    mean = reference.mean(axis=0)
    std = reference.std(axis=0)
    std = np.where(std > 1e-8 * max(1.0, float(np.abs(mean).max())), std, 1.0)
    return mean, std
