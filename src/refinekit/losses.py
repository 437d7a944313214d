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
    change, coarse content may not).
    """
    if kind == "identity":
        return images
    if kind == "mean-channels":
        return images.mean(axis=-1, keepdims=True)
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
