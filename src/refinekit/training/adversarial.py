"""Adversarial losses on the patch discriminator's logits, and the R1 gradient penalty.

Logits are (N, h, w, 2) (index 1 "real", 0 "refined", as in losses.py). Every loss here works
on the per-patch margin s = logit_real - logit_refined, so the two-logit head is unchanged:
- bce:   the paper's cross-entropy (softmax over the pair == sigmoid of s); the refiner uses the
         non-saturating form -log D(R(x)).
- lsgan: least squares (Mao et al. 2017) with 0/1 targets on sigmoid-free scores s.
- hinge: D: relu(1 - s) on real, relu(1 + s) on refined; refiner: -s (Miyato et al. 2018).
All reductions are means over images and patches.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from . import losses

GAN_LOSSES = ("bce", "lsgan", "hinge")


def margin(logits: jax.Array) -> jax.Array:
    return losses.real_margin(logits)


def disc_loss(logits: jax.Array, real: bool, kind: str) -> jax.Array:
    """The discriminator's loss for patches that are all real (`real`) or all refined."""
    if kind == "bce":
        return losses.patch_cross_entropy(logits, losses.REAL if real else losses.REFINED)
    s = margin(logits)
    if kind == "lsgan":
        return jnp.mean(jnp.square(s - 1.0)) if real else jnp.mean(jnp.square(s))
    if kind == "hinge":
        return jnp.mean(jax.nn.relu(1.0 - s)) if real else jnp.mean(jax.nn.relu(1.0 + s))
    raise ValueError(f"unknown gan loss {kind!r}")


def refiner_loss(logits: jax.Array, kind: str) -> jax.Array:
    """The refiner's adversarial loss on the discriminator's logits for refined images."""
    if kind == "bce":
        return losses.patch_cross_entropy(logits, losses.REAL)
    s = margin(logits)
    if kind == "lsgan":
        return jnp.mean(jnp.square(s - 1.0))
    if kind == "hinge":
        return -jnp.mean(s)
    raise ValueError(f"unknown gan loss {kind!r}")


def accuracy(logits: jax.Array, real: bool) -> jax.Array:
    """Fraction of patches the discriminator gets right (margin > 0 means "real")."""
    s = margin(logits)
    return jnp.mean(s > 0) if real else jnp.mean(s <= 0)


def r1_penalty(apply_disc: Callable[[jax.Array], jax.Array], real: jax.Array) -> jax.Array:
    """R1 (Mescheder et al. 2018): mean over images of |grad_x sum_patches s(x)|^2 on real x.

    Each image's patches are summed before the gradient, as StyleGAN2 does with its one
    logit; multiply by gamma / 2 at the call site. real: (N, H, W, C).
    """

    def total_margin(x):
        return margin(apply_disc(x)).sum()

    grads = jax.grad(total_margin)(real)
    return jnp.square(grads).reshape(len(real), -1).sum(axis=1).mean()
