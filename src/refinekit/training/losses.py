"""SimGAN losses. Pure functions; every reduction is a mean, so lambda does not depend on the
batch size, the image size or the number of patches.

Discriminator logits are (N, h, w, 2): index 1 = "real", index 0 = "refined".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

REAL, REFINED = 1, 0


def patch_cross_entropy(logits: jax.Array, label: int) -> jax.Array:
    """Mean cross-entropy of every patch decision against one label. logits: (N, h, w, 2)."""
    labels = jnp.full(logits.shape[:-1], label, jnp.int32)
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def patch_accuracy(logits: jax.Array, label: int) -> jax.Array:
    """Fraction of patches classified as `label`."""
    return (jnp.argmax(logits, axis=-1) == label).mean()


def real_margin(logits: jax.Array) -> jax.Array:
    """Per-patch "real minus refined" logit: positive where the patch is judged real."""
    return logits[..., REAL] - logits[..., REFINED]


def psi(images: jax.Array, kind: str) -> jax.Array:
    """The feature transform of the self-regularisation loss.

    identity: the pixels; mean-channels: the per-pixel mean over colour channels (colour may
    change, brightness structure may not); downsample: 4x4 average pooling (fine texture may
    change, coarse content may not); lowpass: a Gaussian blur (`lowpass`), the structure a
    change of texture, grain or noise leaves alone.
    """
    if kind == "identity":
        return images
    if kind == "mean-channels":
        return images.mean(axis=-1, keepdims=True)
    if kind == "lowpass":
        return lowpass(images)
    if kind == "downsample":
        window = (1, 4, 4, 1)
        summed = jax.lax.reduce_window(images, 0.0, jax.lax.add, window, window, "SAME")
        counts = jax.lax.reduce_window(
            jnp.ones_like(images), 0.0, jax.lax.add, window, window, "SAME"
        )
        return summed / counts
    raise ValueError(f"unknown psi {kind!r}")


def self_regularisation(refined: jax.Array, synthetic: jax.Array, kind: str) -> jax.Array:
    """mean |psi(R(x)) - psi(x)| (multiply by lambda at the call site)."""
    return jnp.abs(psi(refined, kind) - psi(synthetic, kind)).mean()


def content_psi(psi_kind: str, content: str) -> str:
    """The psi of the L1 term for a --content choice (lowpass replaces the pixels by a blur)."""
    return "lowpass" if content == "lowpass" else psi_kind


def lowpass_sigma(height: int, width: int) -> float:
    """Blur radius of the lowpass content loss: 1 pixel per 16 of the shorter side, >= 1."""
    return max(1.0, min(height, width) / 16.0)


def gaussian_kernel(sigma: float) -> jax.Array:
    """Normalised 1-D Gaussian taps over +-ceil(2 sigma)."""
    radius = int(-(-2 * sigma // 1))
    x = jnp.arange(-radius, radius + 1, dtype=jnp.float32)
    taps = jnp.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def lowpass(images: jax.Array, sigma: float | None = None) -> jax.Array:
    """Separable Gaussian blur of NHWC images, edges replicated. sigma: lowpass_sigma if None."""
    n, h, w, c = images.shape
    sigma = lowpass_sigma(h, w) if sigma is None else sigma
    taps = gaussian_kernel(sigma)
    r = (taps.shape[0] - 1) // 2
    x = jnp.pad(images, ((0, 0), (r, r), (r, r), (0, 0)), mode="edge")
    size = taps.shape[0]
    rows = jnp.zeros((n, h, w + 2 * r, c), x.dtype)
    for i in range(size):
        rows = rows + taps[i] * x[:, i : i + h, :, :]
    out = jnp.zeros((n, h, w, c), x.dtype)
    for i in range(size):
        out = out + taps[i] * rows[:, :, i : i + w, :]
    return out


def masked_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over the rows whose label is >= 0 (0 when there are none).

    logits: (N, K); labels: int (N,), -1 for "no class".
    """
    valid = labels >= 0
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(labels, 0))
    return jnp.where(valid, ce, 0.0).sum() / jnp.maximum(valid.sum(), 1)


def masked_kl(target_logits: jax.Array, logits: jax.Array, valid: jax.Array) -> jax.Array:
    """Mean over valid rows of KL(softmax(target_logits) || softmax(logits)); (N, K), (N,)."""
    target_logp = jax.nn.log_softmax(target_logits)
    kl = (jnp.exp(target_logp) * (target_logp - jax.nn.log_softmax(logits))).sum(-1)
    return jnp.where(valid, kl, 0.0).sum() / jnp.maximum(valid.sum(), 1)
