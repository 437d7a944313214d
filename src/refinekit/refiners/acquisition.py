"""A camera model as a refiner: how a clean render would look through the real set's camera.

Each stage changes pixel values only, never where things are, so class labels, masks,
keypoints and boxes of a refined image are those of its synthetic image (the blur moves an
edge by at most its support, BLUR_RADIUS pixels). Stages, in order:

  tone          u -> offset + gain * curve(u) ** gamma      (per channel; a monotone curve)
  colour        saturation about the channel mean, a 3x3 mix (RGB only)
  illumination  vignetting 1 - v r^2 (|v| <= 1) about a jittered centre, a linear ramp in a
                random direction
  blur          a normalised Gaussian point-spread function of bounded support
  resolution    area-downsampling by a factor in [0.25, 1], linear upsampling back (between
                the factors of RESOLUTIONS, a linear blend of the two nearest)
  noise         sqrt(shot * u + read^2) * N(0, 1): signal-dependent plus read noise
  quantisation  round to 2^bits levels: the real set's storage depth, measured, not learned

Parameters that vary between real images (gain, offset, blur, vignetting, ramp, noise level,
the resolution factor) are drawn per image from learned distributions: a mean and a log
spread (reparameterised, so gradients reach both). The draws of an image come from a key derived from its own
pixels and a `salt`, so refining the same file twice gives the same result, and another salt
(refine --variants, --seed) gives another camera draw.

Images are NHWC in [-1, 1], like the ResNet refiner's. Every parameter starts at the identity,
up to per-image spreads of 5% (START_SPREAD). The bit depth is not learned: training sets it to
the number of levels the real images are stored with (levels_in, refiners.fit_to_data). A
discriminator rewards any rounding error a render lacks, so a learned bit depth only drifted
down: 7.95 -> 7.5 bits on a real set stored at 4 bits, 4.0 -> 3.25 when started at 4.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# Resolution-loss factors computed exactly (1 = full resolution); a factor between two is their
# linear blend, so the output, and the gradient, are continuous in the factor. (A categorical
# draw over these, started on 1, never left it: its straight-through gradient vanishes with
# the other factors' probabilities. Measured: resolution 0.99x fitted on every harness case,
# including digits, whose real scans are 8x8 resampled to 16, a factor of 0.5.)
RESOLUTIONS = (1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25)
RESOLUTION_STEP = 0.125
BLUR_RADIUS = 4  # pixels: the point-spread function's support is (2 R + 1)^2
CURVE_KNOTS = 8  # pieces of the monotone tone curve
MIN_BITS, MAX_BITS = 1.0, 8.0
# Log of the per-image spreads' start: 0.05. The reparameterised gradient of a spread is
# proportional to the spread itself, so one started near zero never leaves it (at 0.007 the
# gain spread stayed there on every harness case, against real spreads of 0.1-0.25).
START_SPREAD = -3.0
# 7.95 bits, near the identity on 8-bit images: a new camera's bit depth until training sets
# the real set's (refiners.fit_to_data), and the most it sets.
START_BITS_LOGIT = 5.0


def _const(value, shape=()) -> nnx.Param:
    return nnx.Param(jnp.full(shape, value, jnp.float32))


class Acquisition(nnx.Module):
    """The camera model: x (N, H, W, C) in [-1, 1] -> the same images through the camera."""

    def __init__(self, channels: int, *, salt: int = 0):
        c = channels
        self.channels = channels
        self.salt = salt
        # tone: log gain, offset and log gamma per channel, each with a per-image log spread
        self.log_gain = _const(0.0, (c,))
        self.log_gain_spread = _const(START_SPREAD, (c,))
        self.offset = _const(0.0, (c,))
        self.offset_spread = _const(START_SPREAD, (c,))
        self.log_gamma = _const(0.0, (c,))
        self.curve = _const(0.0, (c, CURVE_KNOTS))  # softmax increments: equal = identity
        # colour (used with 3 channels)
        self.log_saturation = _const(0.0)
        self.mix = nnx.Param(jnp.eye(c, dtype=jnp.float32))
        # illumination
        self.vignette = _const(0.0)
        self.vignette_spread = _const(START_SPREAD)
        self.log_ramp = _const(-5.0)  # scale of a zero-mean ramp strength
        # blur: log sigma in pixels (0.3 px: within 0.4% of the identity)
        self.log_blur = _const(math.log(0.3))
        self.log_blur_spread = _const(START_SPREAD)
        # resolution factor: the mean of a per-image draw clipped to [0.25, 1]; starting at 1,
        # the draws below 1 (half of them, slightly below) carry its gradient
        self.resolution = _const(1.0)
        self.resolution_spread = _const(START_SPREAD)
        # noise: log shot-noise gain, log read-noise std, per-image log spread of the level
        self.log_shot = _const(-12.0)
        self.log_read = _const(-7.0)
        self.noise_spread = _const(START_SPREAD)
        # quantisation: bits = MIN + (MAX - MIN) * sigmoid(bits_logit), set to the real set's
        # storage depth before training (levels_in, refiners.fit_to_data); a Param so that
        # checkpoints and exports carry it
        self.bits_logit = _const(START_BITS_LOGIT)

    def __call__(self, x: jax.Array) -> jax.Array:
        u = (x.astype(jnp.float32) + 1.0) * 0.5
        keys = image_keys(u, self.salt)
        out = jax.vmap(self._one)(u, keys)
        return out * 2.0 - 1.0

    # One image (H, W, C) in [0, 1] with its own key.
    def _one(self, u: jax.Array, key: jax.Array) -> jax.Array:
        k = jax.random.split(key, 12)
        h, w, c = u.shape

        def draw(i, mean, log_spread):
            return mean + jnp.exp(log_spread) * jax.random.normal(k[i], jnp.shape(mean))

        # tone
        curve = monotone_curve(u, self.curve[...])
        gamma = jnp.exp(self.log_gamma[...])
        gain = jnp.exp(draw(0, self.log_gain[...], self.log_gain_spread[...]))
        offset = draw(1, self.offset[...], self.offset_spread[...])
        u = offset + gain * jnp.power(jnp.clip(curve, 1e-6, 1.0), gamma)
        # colour
        if c == 3:
            grey = u.mean(axis=-1, keepdims=True)
            u = grey + jnp.exp(self.log_saturation[...]) * (u - grey)
            u = jnp.einsum("hwc,dc->hwd", u, self.mix[...])
        # illumination
        yy, xx = jnp.meshgrid(
            (jnp.arange(h) + 0.5) / h - 0.5, (jnp.arange(w) + 0.5) / w - 0.5, indexing="ij"
        )
        centre = 0.1 * jax.random.normal(k[2], (2,))
        r2 = ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / 0.5
        # at most 1: the corners of a lens's image get darker, never negative
        vignette = jnp.clip(draw(3, self.vignette[...], self.vignette_spread[...]), -1.0, 1.0)
        angle = jax.random.uniform(k[4], (), maxval=2 * jnp.pi)
        ramp = jnp.exp(self.log_ramp[...]) * jax.random.normal(k[5], ())
        light = (1.0 - vignette * r2) * (1.0 + ramp * (xx * jnp.cos(angle) + yy * jnp.sin(angle)))
        u = u * jnp.maximum(light, 0.0)[..., None]
        # blur
        sigma = jnp.exp(draw(6, self.log_blur[...], self.log_blur_spread[...]))
        u = gaussian_blur(u, jnp.clip(sigma, 0.05, BLUR_RADIUS / 1.5))
        # resolution
        factor = draw(7, self.resolution[...], self.resolution_spread[...])
        weights = resolution_weights(factor)
        rows, cols = resample_matrices(h), resample_matrices(w)
        u = jnp.einsum("kih,hwc->kiwc", rows, u)
        u = jnp.einsum("k,kiwc,kjw->ijc", weights, u, cols)
        # noise
        level = jnp.exp(draw(8, jnp.zeros(()), self.noise_spread[...]))
        variance = jnp.exp(self.log_shot[...]) * jnp.clip(u, 0.0, 1.0) + jnp.exp(
            2 * self.log_read[...]
        )
        u = u + level * jnp.sqrt(variance) * jax.random.normal(k[9], u.shape)
        # quantisation
        u = quantise(jnp.clip(u, 0.0, 1.0), self.levels())
        return u

    def levels(self) -> jax.Array:
        logit = jax.lax.stop_gradient(self.bits_logit[...])  # measured, not learned
        bits = MIN_BITS + (MAX_BITS - MIN_BITS) * jax.nn.sigmoid(logit)
        return jnp.exp2(bits)


def image_keys(u: jax.Array, salt: int) -> jax.Array:
    """One PRNG key per image, from its pixels (at 8-bit precision) and `salt`."""
    n = u.shape[0]
    q = jnp.round(jnp.clip(u, 0.0, 1.0) * 255.0).astype(jnp.uint32).reshape(n, -1)
    position = jnp.arange(q.shape[1], dtype=jnp.uint32)
    weights = position * jnp.uint32(2654435761) + jnp.uint32(0x9E3779B9)
    digest = jnp.sum((q + jnp.uint32(1)) * weights, axis=1, dtype=jnp.uint32)  # wraps mod 2^32
    base = jax.random.key(salt)
    return jax.vmap(lambda d: jax.random.fold_in(base, d))(digest)


def monotone_curve(u: jax.Array, logits: jax.Array) -> jax.Array:
    """A piecewise-linear increasing map of [0, 1] onto [0, 1] per channel; equal logits: u."""
    knots = logits.shape[-1]
    rise = jax.nn.softmax(logits, axis=-1)  # (C, K), each row sums to 1
    ys = jnp.concatenate([jnp.zeros((rise.shape[0], 1)), jnp.cumsum(rise, axis=-1)], axis=-1)
    t = jnp.clip(u, 0.0, 1.0) * knots
    i = jnp.clip(jnp.floor(t), 0, knots - 1).astype(jnp.int32)
    frac = t - i
    channel = jnp.arange(u.shape[-1])
    low, high = ys[channel, i], ys[channel, i + 1]
    return low + frac * (high - low)


def gaussian_kernel(sigma: jax.Array, radius: int = BLUR_RADIUS) -> jax.Array:
    taps = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    weights = jnp.exp(-0.5 * (taps / sigma) ** 2)
    return weights / weights.sum()


def gaussian_blur(u: jax.Array, sigma: jax.Array) -> jax.Array:
    """Separable Gaussian blur of one (H, W, C) image, edges replicated."""
    kernel = gaussian_kernel(sigma)
    r = (kernel.shape[0] - 1) // 2
    padded = jnp.pad(u, ((r, r), (r, r), (0, 0)), mode="edge")
    h, w, _ = u.shape
    rows = jnp.stack([padded[i : i + h] for i in range(2 * r + 1)])
    rows = jnp.einsum("k,khwc->hwc", kernel, rows)
    cols = jnp.stack([rows[:, i : i + w] for i in range(2 * r + 1)])
    return jnp.einsum("k,khwc->hwc", kernel, cols)


def linear_resize_matrix(n: int, m: int, antialias: bool) -> np.ndarray:
    """(m, n): what jax.image.resize(method="linear") does to a length-n axis resized to m,
    written in NumPy (the same weights as its scale_and_translate: a triangle kernel widened by
    n / m when antialiasing a downsample, normalised, zero outside the input)."""
    inv_scale = n / m
    width = max(inv_scale, 1.0) if antialias else 1.0
    sample = (np.arange(m) + 0.5) * inv_scale - 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(sample[None, :] - np.arange(n)[:, None]) / width)
    total = weights.sum(axis=0, keepdims=True)
    weights = np.where(np.abs(total) > 1000 * np.finfo(np.float32).eps, weights / total, 0.0)
    inside = (sample >= -0.5) & (sample <= n - 0.5)
    return np.where(inside[None, :], weights, 0.0).T


@functools.lru_cache(maxsize=32)
def resample_matrices(n: int) -> np.ndarray:
    """(len(RESOLUTIONS), n, n): matrix k resamples a length-n axis at factor k: down with an
    antialiasing filter, back up linearly. Both are linear and separable, so an image at factor
    k is M_k @ u @ M_k^T: constant matrices instead of fourteen resize computations in the
    model (its training step compiled about a fifth faster)."""
    matrices = []
    for factor in RESOLUTIONS:
        m = max(1, round(n * factor))
        if m == n:
            matrices.append(np.eye(n))
            continue
        down = linear_resize_matrix(n, m, antialias=True)
        up = linear_resize_matrix(m, n, antialias=False)
        matrices.append(up @ down)
    return np.stack(matrices).astype(np.float32)


def resolution_weights(factor: jax.Array) -> jax.Array:
    """Weights over RESOLUTIONS for a factor (clipped to their range): the two nearest factors
    share it linearly (hat functions), so the weights sum to 1 and are continuous in it."""
    f = jnp.clip(factor, RESOLUTIONS[-1], RESOLUTIONS[0])
    grid = jnp.asarray(RESOLUTIONS, jnp.float32)
    return jnp.maximum(0.0, 1.0 - jnp.abs(f - grid) / RESOLUTION_STEP)


def quantise(u: jax.Array, levels: jax.Array) -> jax.Array:
    """Round to `levels` equally spaced values in [0, 1]; the gradient passes straight through
    to u."""
    step = 1.0 / (levels - 1.0)
    return u + jax.lax.stop_gradient(jnp.round(u / step) * step - u)


def levels_in(images: np.ndarray) -> float:
    """How many equally spaced values the images' pixels are stored with (uint8 or uint16,
    pooled over images and channels): the fewest levels L <= 256 whose grid
    round(k * max / (L - 1)) holds 99.9% of the pixels (robust to a few stray values), else all
    of the dtype's values. 256 for photographs, 16 for a set stored at 4 bits, all values for
    a set resampled after its quantisation."""
    top = int(np.iinfo(images.dtype).max)
    counts = np.bincount(images.ravel(), minlength=top + 1)
    if np.count_nonzero(counts) < 2:  # one value: no grid to see
        return float(top + 1)
    needed = 0.999 * counts.sum()
    for levels in range(2, 257):
        grid = np.unique(np.round(np.arange(levels) * (top / (levels - 1))).astype(np.int64))
        if counts[grid].sum() >= needed:
            return float(levels)
    return float(top + 1)


def bits_logit_for(levels: float) -> float:
    """The bits_logit whose bit depth gives `levels` values, at most START_BITS_LOGIT's (so a
    set of photographs gets the camera it had before the depth was measured) and at least 1.05
    bits."""
    bits = float(np.clip(np.log2(max(levels, 2.0)), MIN_BITS + 0.05, MAX_BITS - 0.01))
    fraction = (bits - MIN_BITS) / (MAX_BITS - MIN_BITS)
    return min(math.log(fraction / (1.0 - fraction)), START_BITS_LOGIT)


def describe(params: dict) -> dict:
    """The fitted camera in numbers: {stage: {name: value}}, from a pure dict of parameters
    (nnx.to_pure_dict of an Acquisition's Params), means and per-image spreads."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    sig = 1.0 / (1.0 + np.exp(-p["bits_logit"]))
    levels = np.exp2(MIN_BITS + (MAX_BITS - MIN_BITS) * sig)
    channels = p["log_gain"].shape[0]
    out = {
        "blur_sigma_px": float(np.exp(p["log_blur"])),
        "blur_sigma_spread": float(np.exp(p["log_blur_spread"])),  # of log sigma
        "resolution": float(np.clip(p["resolution"], RESOLUTIONS[-1], RESOLUTIONS[0])),
        "resolution_spread": float(np.exp(p["resolution_spread"])),
        "gain": [float(v) for v in np.exp(p["log_gain"])],
        "gain_spread": [float(v) for v in np.exp(p["log_gain_spread"])],  # of log gain
        "offset": [float(v) for v in p["offset"]],
        "offset_spread": [float(v) for v in np.exp(p["offset_spread"])],
        "gamma": [float(v) for v in np.exp(p["log_gamma"])],
        "vignetting": float(np.clip(p["vignette"], -1.0, 1.0)),
        "vignetting_spread": float(np.exp(p["vignette_spread"])),
        "ramp": float(np.exp(p["log_ramp"])),
        "noise_at_mid_grey": float(
            np.sqrt(np.exp(p["log_shot"]) * 0.5 + np.exp(2 * p["log_read"]))
        ),
        "noise_read": float(np.exp(p["log_read"])),
        "noise_shot_gain": float(np.exp(p["log_shot"])),
        "noise_level_spread": float(np.exp(p["noise_spread"])),
        "bits": float(np.log2(levels)),
    }
    if channels == 3:
        out["saturation"] = float(np.exp(p["log_saturation"]))
        out["colour_mix"] = [[float(v) for v in row] for row in p["mix"]]
    return out


def summary_line(camera: dict) -> str:
    """The fitted camera in words, one line."""
    gain = ", ".join(f"{g:.2f}" for g in camera["gain"])
    offset = ", ".join(f"{o:+.2f}" for o in camera["offset"])
    gamma = ", ".join(f"{g:.2f}" for g in camera["gamma"])
    text = (
        f"blur sigma {camera['blur_sigma_px']:.2f} px, resolution {camera['resolution']:.2f}x, "
        f"gain {gain}, offset {offset}, gamma {gamma}, vignetting {camera['vignetting']:.2f}, "
        f"noise {camera['noise_at_mid_grey']:.3f} at mid-grey, {camera['bits']:.1f} bits"
    )
    if "saturation" in camera:
        text += f", saturation {camera['saturation']:.2f}"
    return text
