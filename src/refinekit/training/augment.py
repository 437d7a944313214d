"""Differentiable discriminator augmentation for training with few real images.

With tens or hundreds of real images the discriminator memorises them and its feedback stops
meaning anything. Two published remedies augment *everything the discriminator sees* (the real
batch and the refined batch alike) with differentiable transforms, so gradients still reach the
refiner:

- DiffAugment (Zhao et al. 2020): the fixed policy ``color,translation,cutout``, every transform
  applied every time (``p = 1``).
- ADA (Karras et al. 2020): each transform applied with a probability ``p`` that adapts during
  training from an overfitting signal, the sign of the discriminator's output on real images
  (`AdaState`, `ada_observe`, `ada_adjust`).

Everything here is a pure JAX function meant to run inside the jitted training step::

    policy = parse_policy(config.augment_policy, channels)          # once, outside jit
    k_aug = jax.random.fold_in(step_key, 1)
    real_aug = augment(real, k_aug, policy, ada.p)                 # same key: same transforms
    refined_aug = augment(refined, k_aug, policy, ada.p)
    ...
    ada = ada_adjust(ada_observe(ada, real_margin), target=0.6, batch_size=64,
                     interval=4, speed_images=500_000)

Images are float32 ``(N, H, W, C)`` in ``[-1, 1]``; 0 is the mean-free mid value used for every
fill. Outputs are not clipped (DiffAugment does not clip either), so colour transforms can leave
``[-1, 1]`` slightly. Every transform is affine in the pixels for a fixed key, so the gradient
w.r.t. the images is the transposed transform.

Transforms (names in `TRANSFORMS`; ranges for an ``H x W`` image):

``color``
    DiffAugment's colour jitter, for RGB only (C = 3): brightness ``x + b`` with
    ``b ~ U[-0.5, 0.5)``; saturation ``(x - mean_c x) * s + mean_c x`` with ``s ~ U[0, 2)``
    (``mean_c``: the mean over channels per pixel); contrast ``(x - mean x) * c + mean x`` with
    ``c ~ U[0.5, 1.5)`` (``mean``: the image's mean over pixels and channels). The three are one
    transform: applied together or not at all.
``intensity``
    Brightness and contrast only (same ranges), identical for every channel, so the relation
    between channels (hue, and the difference of depth/alpha channels) is kept up to the common
    contrast factor. `parse_policy` maps ``color`` to ``intensity`` for images with C != 3
    (grayscale, gray + alpha, depth, RGBA); `augment` refuses ``color`` on such images instead
    of guessing. Users may also ask for ``intensity`` on RGB images.
``translation``
    DiffAugment's integer shift with zero fill: ``(dy, dx)`` uniform integers in
    ``[-r_h, r_h] x [-r_w, r_w]``, ``r = int(size / 8 + 0.5)`` (2 for 16 pixels, 4 x 7 for
    35 x 55); ``out[i, j] = x[i - dy, j - dx]``, 0 where that is outside the image.
``cutout``
    DiffAugment's cutout: one ``int(H / 2 + 0.5) x int(W / 2 + 0.5)`` rectangle set to 0, its
    centre uniform over the image (including its border, so the rectangle can stick out of it).
``flip``
    Horizontal mirror, ``x[:, ::-1]`` per image.
``rotate``
    Small rotation about the image centre by an angle uniform in ``[-10, 10)`` degrees,
    bilinear sampling, 0 outside the source image (in the corners). Small angles, not
    multiples of 90 degrees: synthetic/real pairs (eye gaze, hand depth maps) have an upright
    orientation the refiner must keep, and quarter turns only work on square images.
``noise``
    Additive Gaussian noise, per pixel and channel, with a per-image ``sigma = 0.1 * |N(0, 1)|``
    (ADA's image-space noise; mean sigma 0.08 in ``[-1, 1]`` units).

Each transform in the policy is applied in the policy's order to each image independently with
probability ``p``; at ``p = 0`` the output is exactly the input, at ``p = 1`` every transform is
applied to every image.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.ndimage import map_coordinates

from ..errors import ConfigError

TRANSFORMS = ("color", "translation", "cutout", "flip", "rotate", "noise")
"""The transform names a user can list in ``--augment-policy``."""

DEFAULT_POLICY = "color,translation,cutout"
"""DiffAugment's policy (Zhao et al. 2020)."""

_INTERNAL = ("intensity",)
_NAMES = TRANSFORMS + _INTERNAL

_TRANSLATION_RATIO = 1 / 8
_CUTOUT_RATIO = 1 / 2
_MAX_ROTATION_DEGREES = 10.0
_NOISE_STD = 0.1


# ----------------------------------------------------------------------------------------------
# Policy


def parse_policy(text: str, channels: int) -> tuple[str, ...]:
    """Turn the ``--augment-policy`` text into the validated tuple `augment` takes.

    Args:
      text: comma-separated transform names, e.g. ``"color,translation,cutout"``; case and
        spaces around names are ignored, empty items are skipped.
      channels: C of the images the policy will be applied to.

    Returns:
      The names in the given order (the order they are applied in). For ``channels != 3``,
      ``color`` becomes ``intensity`` (brightness and contrast only: no hue or saturation
      change on grayscale, depth or alpha channels). ``parse_policy`` of the joined result gives
      the same result again, so the tuple can be stored in a config and parsed on resume.

    Raises:
      ConfigError: an unknown or repeated name, or an empty policy.
    """
    if channels < 1:
        raise ValueError(f"channels must be at least 1, got {channels}")
    names = [item.strip().lower() for item in text.split(",")]
    names = [name for name in names if name]
    if not names:
        raise ConfigError(
            f"--augment-policy {text!r} lists no transforms; valid names are "
            f"{', '.join(_NAMES)} (use --augment none to turn augmentation off)"
        )
    unknown = [name for name in names if name not in _NAMES]
    if unknown:
        raise ConfigError(
            f"--augment-policy {text!r}: unknown transform {unknown[0]!r}; valid names are "
            f"{', '.join(_NAMES)}"
        )
    if channels != 3:
        names = ["intensity" if name == "color" else name for name in names]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            note = (
                " ('color' means 'intensity' for images that are not RGB)"
                if (name == "intensity" and channels != 3)
                else ""
            )
            raise ConfigError(f"--augment-policy {text!r} lists {name!r} twice{note}")
        seen.add(name)
    return tuple(names)


# ----------------------------------------------------------------------------------------------
# Transforms with explicit parameters (deterministic, tested against NumPy)


def _brightness(images: jax.Array, offset: jax.Array) -> jax.Array:
    """``images + offset``; images (N, H, W, C), offset (N,)."""
    return images + offset[:, None, None, None]


def _saturation(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Scale each pixel's deviation from its channel mean; factor (N,)."""
    mean = jnp.mean(images, axis=3, keepdims=True)
    return (images - mean) * factor[:, None, None, None] + mean


def _contrast(images: jax.Array, factor: jax.Array) -> jax.Array:
    """Scale each image's deviation from its mean over pixels and channels; factor (N,)."""
    mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
    return (images - mean) * factor[:, None, None, None] + mean


def _translate(images: jax.Array, shift: jax.Array) -> jax.Array:
    """Shift each image by whole pixels with zero fill: ``out[i, j] = x[i - dy, j - dx]``.

    Args:
      images: (N, H, W, C).
      shift: (N, 2) integers ``(dy, dx)``; positive moves the content down / right.

    Returns:
      (N, H, W, C), like ``np.roll`` along H and W with the wrapped pixels set to 0.
    """
    n, h, w, _ = images.shape
    rows = jnp.arange(h)[None, :] - shift[:, 0:1]  # (N, H) source row of each output row
    cols = jnp.arange(w)[None, :] - shift[:, 1:2]  # (N, W)
    valid = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]
    batch = jnp.arange(n)[:, None, None]
    moved = images[
        batch, jnp.clip(rows, 0, h - 1)[:, :, None], jnp.clip(cols, 0, w - 1)[:, None, :]
    ]
    return jnp.where(valid[..., None], moved, jnp.zeros((), images.dtype))


def _cutout(images: jax.Array, centre: jax.Array, size: tuple[int, int]) -> jax.Array:
    """Set one ``size`` rectangle per image to 0.

    Args:
      images: (N, H, W, C).
      centre: (N, 2) integers; the rectangle covers rows ``[cy - sh // 2, cy - sh // 2 + sh)``
        and the columns alike, clipped to the image.
      size: (sh, sw), static.

    Returns:
      (N, H, W, C): ``images`` times a 0/1 mask.
    """
    _, h, w, _ = images.shape
    top = centre[:, 0:1] - size[0] // 2
    left = centre[:, 1:2] - size[1] // 2
    rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
    in_rows = (rows >= top) & (rows < top + size[0])  # (N, H)
    in_cols = (cols >= left) & (cols < left + size[1])  # (N, W)
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])
    return images * keep[..., None].astype(images.dtype)


def _flip(images: jax.Array) -> jax.Array:
    """Mirror left-right: ``images[:, :, ::-1]``."""
    return jnp.flip(images, axis=2)


def _rotate(images: jax.Array, angle: jax.Array) -> jax.Array:
    """Rotate each image about its centre, counter-clockwise as displayed, bilinear, zero fill.

    Args:
      images: (N, H, W, C).
      angle: (N,) radians.

    Returns:
      (N, H, W, C); at a quarter turn on a square image this is ``np.rot90(x, axes=(1, 2))``
      up to rounding.
    """
    _, h, w, _ = images.shape
    cy, cx = (h - 1) / 2, (w - 1) / 2
    i, j = jnp.meshgrid(
        jnp.arange(h, dtype=jnp.float32) - cy, jnp.arange(w, dtype=jnp.float32) - cx, indexing="ij"
    )
    cos = jnp.cos(angle).astype(jnp.float32)[:, None, None]
    sin = jnp.sin(angle).astype(jnp.float32)[:, None, None]
    # Inverse map: the source of output pixel (i, j) is the pixel rotated back by -angle.
    src_rows = cy + cos * i + sin * j  # (N, H, W)
    src_cols = cx + cos * j - sin * i

    def one_channel(channel: jax.Array, r: jax.Array, c: jax.Array) -> jax.Array:
        return map_coordinates(channel, [r, c], order=1, mode="constant", cval=0.0)

    per_image = jax.vmap(one_channel, in_axes=(2, None, None), out_axes=2)
    return jax.vmap(per_image)(images, src_rows, src_cols)


# ----------------------------------------------------------------------------------------------
# Random transforms: (images, u, key) -> images. `u` is (N, _PARAMS) uniform [0, 1) draws per
# image; `key` is only used for per-pixel noise. Parameters depend on the key and shape only.
#
# All per-image scalars of a call come from one `jax.random.uniform`, and every draw is made flat
# and reshaped: on XLA:CPU each RNG call costs 0.1-0.3 s of compile time, and a 4-d draw 3-4x
# more than the same number of values drawn 1-d (measured with jax 0.10), more than the
# transforms themselves.

_PARAMS = 3


def _integers(u: jax.Array, low: int, high: int) -> jax.Array:
    """Uniform integers in [low, high) from uniform [0, 1) floats."""
    return jnp.clip(jnp.floor(u * (high - low)).astype(jnp.int32) + low, low, high - 1)


def _random_color(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del key
    u = u.astype(images.dtype)
    images = _brightness(images, u[:, 0] - 0.5)  # [-0.5, 0.5)
    images = _saturation(images, 2.0 * u[:, 1])  # [0, 2)
    return _contrast(images, u[:, 2] + 0.5)  # [0.5, 1.5)


def _random_intensity(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del key
    u = u.astype(images.dtype)  # the same draws as `color`, less saturation
    return _contrast(_brightness(images, u[:, 0] - 0.5), u[:, 2] + 0.5)


def _translation_range(size: int) -> int:
    return int(size * _TRANSLATION_RATIO + 0.5)


def _random_translation(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del key
    _, h, w, _ = images.shape
    ry, rx = _translation_range(h), _translation_range(w)
    shift = jnp.stack([_integers(u[:, 0], -ry, ry + 1), _integers(u[:, 1], -rx, rx + 1)], axis=1)
    return _translate(images, shift)


def _cutout_size(h: int, w: int) -> tuple[int, int]:
    return int(h * _CUTOUT_RATIO + 0.5), int(w * _CUTOUT_RATIO + 0.5)


def _random_cutout(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del key
    _, h, w, _ = images.shape
    sh, sw = _cutout_size(h, w)
    # DiffAugment's centre range: [0, size + 1 - cut % 2), so even cuts reach both borders alike.
    centre = jnp.stack(
        [_integers(u[:, 0], 0, h + 1 - sh % 2), _integers(u[:, 1], 0, w + 1 - sw % 2)], axis=1
    )
    return _cutout(images, centre, (sh, sw))


def _random_flip(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del u, key  # the only randomness is whether it is applied
    return _flip(images)


def _random_rotate(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    del key
    limit = math.radians(_MAX_ROTATION_DEGREES)
    return _rotate(images, (2.0 * u[:, 0] - 1.0) * limit)  # [-10, 10) degrees


def _random_noise(images: jax.Array, u: jax.Array, key: jax.Array) -> jax.Array:
    # |N(0, 1)| by inverse CDF of the half-normal: sqrt(2) erfinv(u), u in [0, 1).
    sigma = _NOISE_STD * math.sqrt(2.0) * jax.lax.erf_inv(u[:, 0])
    unit = jax.random.normal(key, (math.prod(images.shape),), jnp.float32).reshape(images.shape)
    noise = sigma[:, None, None, None] * unit
    return images + noise.astype(images.dtype)


_RANDOM: dict[str, Callable[[jax.Array, jax.Array, jax.Array], jax.Array]] = {
    "color": _random_color,
    "intensity": _random_intensity,
    "translation": _random_translation,
    "cutout": _random_cutout,
    "flip": _random_flip,
    "rotate": _random_rotate,
    "noise": _random_noise,
}


def _check_policy(policy: tuple[str, ...], channels: int) -> None:
    if isinstance(policy, str):
        raise TypeError(
            f"policy must be a tuple of transform names, got the string {policy!r}; "
            "use parse_policy(text, channels)"
        )
    for name in policy:
        if name not in _RANDOM:
            raise ValueError(f"unknown transform {name!r}; valid names are {', '.join(_NAMES)}")
        if name == "color" and channels != 3:
            raise ValueError(
                f"'color' changes saturation and needs RGB images, got {channels} channels; "
                "use 'intensity' (parse_policy maps it for you)"
            )


# ----------------------------------------------------------------------------------------------
# Public entry point


def augment(
    images: jax.Array, key: jax.Array, policy: tuple[str, ...], p: jax.Array | float
) -> jax.Array:
    """Apply the policy's transforms, each to each image independently with probability ``p``.

    Jit with ``policy`` static and ``p`` traced: changing ``p`` does not recompile. The random
    draws depend only on ``key``, ``policy`` and the batch shape, never on the pixels, so two
    batches of the same shape augmented with the same key get exactly the same transforms (the
    same images flipped, shifted by the same amounts, cut at the same places), and split keys
    give independent ones. Whether a transform is applied and its parameters come from
    separate draws, so for one key a larger ``p`` adds images to the transformed set without
    changing the parameters of the ones already in it.

    Args:
      images: (N, H, W, C) float, nominally in ``[-1, 1]``.
      key: a typed (``jax.random.key``) or raw (``jax.random.PRNGKey``) key.
      policy: transform names, e.g. from `parse_policy`; applied in this order.
      p: scalar probability in ``[0, 1]`` (1.0 for DiffAugment, ``AdaState.p`` for ADA).

    Returns:
      (N, H, W, C) in the dtype of ``images``; exactly ``images`` where nothing was applied.
      Differentiable w.r.t. ``images``.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    _check_policy(policy, images.shape[3])
    p = jnp.asarray(p, jnp.float32)
    draw_key, noise_key = jax.random.split(key)
    # (len(policy), N, 1 + _PARAMS): column 0 decides whether to apply, the rest parametrise.
    shape = (len(policy), images.shape[0], 1 + _PARAMS)
    draws = jax.random.uniform(draw_key, (math.prod(shape),), jnp.float32).reshape(shape)
    out = images
    for index, name in enumerate(policy):
        chosen = draws[index, :, 0] < p
        transformed = _RANDOM[name](out, draws[index, :, 1:], jax.random.fold_in(noise_key, index))
        out = jnp.where(chosen[:, None, None, None], transformed, out)
    return out


# ----------------------------------------------------------------------------------------------
# ADA: adaptive p
