"""Photometric variants: the same scene under another camera and light, no pixel moved.

Label retention's classifiers train on each synthetic image and a few such variants of it, so a
refined image that only looks different (tone, contrast, blur, grain, bit depth, uneven light)
is still read by its class. Each variant draws, per image:

- illumination: a vignette (darker by up to VIGNETTE at the corners, around a centre near the
  middle) or a linear ramp (up to +-RAMP across the image, any direction);
- tone: contrast about the image mean x U(CONTRAST), gain U(GAIN) x U(CHANNEL_GAIN) per
  channel, offset U(OFFSET) plus U(CHANNEL_OFFSET) per channel; clipped to [0, 1];
- gamma exp(U(-GAMMA, GAMMA));
- Gaussian blur, sigma U(0, MAX_SIGMA) (edge pixels repeated);
- additive Gaussian noise, std U(0, MAX_NOISE); clipped to [0, 1];
- with probability QUANTISED, quantisation to 2**U{LEVEL_BITS} levels.

NumPy only; deterministic for a given generator state.
"""

from __future__ import annotations

import numpy as np

VERSION = 1  # part of the retention classifiers' cache key: change it with any range below
VIGNETTE = 0.6
RAMP = 0.35
CONTRAST = (0.4, 1.3)
GAIN = (0.5, 1.25)
CHANNEL_GAIN = (0.85, 1.15)
OFFSET = (-0.1, 0.3)
CHANNEL_OFFSET = (-0.05, 0.05)
GAMMA = 0.5
MAX_SIGMA = 1.5
MAX_NOISE = 0.1
QUANTISED = 0.5
LEVEL_BITS = (2, 5)  # 4 to 32 levels
DESCRIPTION = (
    f"vignette (up to {VIGNETTE:.0%} darker) or ramp (up to +-{RAMP:.0%}); contrast "
    f"x{CONTRAST[0]}-{CONTRAST[1]}, gain x{GAIN[0]}-{GAIN[1]} (and x{CHANNEL_GAIN[0]}-"
    f"{CHANNEL_GAIN[1]} per channel), offset {OFFSET[0]:+}-{OFFSET[1]:+}; gamma "
    f"{np.exp(-GAMMA):.2f}-{np.exp(GAMMA):.2f}; Gaussian blur sigma 0-{MAX_SIGMA}; noise std "
    f"0-{MAX_NOISE}; {QUANTISED:.0%} quantised to {2 ** LEVEL_BITS[0]}-{2 ** LEVEL_BITS[1]} levels"
)


def variants(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One photometric variant of each float [0, 1] NHWC image, float32 [0, 1]."""
    x = np.asarray(images, np.float32)
    n, height, width, channels = x.shape

    def draw(low: float, high: float, *shape: int) -> np.ndarray:
        return rng.uniform(low, high, (n, *shape)).astype(np.float32)

    # Illumination: vignette or ramp, on normalised coordinates in [-1, 1].
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[None, :, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, None, :]
    centre_y, centre_x = draw(-0.3, 0.3, 1, 1), draw(-0.3, 0.3, 1, 1)
    radius2 = np.minimum(((ys - centre_y) ** 2 + (xs - centre_x) ** 2) / 2.0, 1.0)
    vignette = 1.0 - draw(0.0, VIGNETTE, 1, 1) * radius2
    angle = draw(0.0, 2 * np.pi, 1, 1)
    ramp = 1.0 + draw(-RAMP, RAMP, 1, 1) * (np.cos(angle) * xs + np.sin(angle) * ys) / np.sqrt(2)
    use_vignette = rng.random((n, 1, 1)) < 0.5
    light = np.where(use_vignette, vignette, ramp).astype(np.float32)
    x = x * light[..., None]

    # Tone: contrast about the mean, gain and offset (global and per channel).
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = mean + (x - mean) * draw(*CONTRAST, 1, 1, 1)
    x = x * draw(*GAIN, 1, 1, 1) * draw(*CHANNEL_GAIN, 1, 1, channels)
    x = x + draw(*OFFSET, 1, 1, 1) + draw(*CHANNEL_OFFSET, 1, 1, channels)
    x = np.clip(x, 0.0, 1.0) ** np.exp(draw(-GAMMA, GAMMA, 1, 1, 1))

    x = blur(x, draw(0.0, MAX_SIGMA))
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * draw(0.0, MAX_NOISE, 1, 1, 1)
    x = np.clip(x, 0.0, 1.0)

    bits = rng.integers(LEVEL_BITS[0], LEVEL_BITS[1] + 1, n)
    levels = np.where(rng.random(n) < QUANTISED, 2.0**bits - 1.0, 0.0)[:, None, None, None]
    quantised = np.round(x * levels) / np.maximum(levels, 1.0)
    return np.where(levels > 0, quantised, x).astype(np.float32)


def blur(images: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Separable Gaussian blur of NHWC images, one sigma per image (0: unchanged)."""
    radius = max(1, int(np.ceil(3 * MAX_SIGMA)))
    taps = np.arange(-radius, radius + 1, dtype=np.float32)
    safe = np.maximum(sigma, 1e-3)[:, None]
    kernel = np.exp(-0.5 * (taps[None, :] / safe) ** 2)
    kernel /= kernel.sum(axis=1, keepdims=True)  # (n, taps); sigma ~0 gives a unit impulse
    height, width = images.shape[1:3]
    out = np.pad(images, ((0, 0), (radius, radius), (0, 0), (0, 0)), mode="edge")
    out = sum(kernel[:, k, None, None, None] * out[:, k : k + height] for k in range(len(taps)))
    out = np.pad(out, ((0, 0), (0, 0), (radius, radius), (0, 0)), mode="edge")
    return sum(
        kernel[:, k, None, None, None] * out[:, :, k : k + width] for k in range(len(taps))
    ).astype(np.float32)
