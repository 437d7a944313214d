"""ADA's adaptive augmentation probability (Karras et al. 2020), as a pure state and functions.

`augment.augment` applies each transform with the probability `AdaState.p`; the training step
observes the discriminator's real-image margin (`ada_observe`) and moves p towards the target
every few updates (`ada_adjust`). Jit-able, no host sync.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

ADA_TARGET = 0.6
"""ADA's target for the overfitting signal E[sign(D(real))] (Karras et al. 2020)."""
ADA_INTERVAL = 4
"""ADA adjusts p every this many observed minibatches."""
ADA_SPEED_IMAGES = 500 * 1000
"""ADA's speed: p can go from 0 to 1 in this many real images (500k)."""


class AdaState(NamedTuple):
    """ADA's adaptive probability and its overfitting-signal accumulators (a pytree)."""

    p: jax.Array  # float32 scalar in [0, 1]: the probability `augment` is called with
    signal_sum: jax.Array  # float32 scalar: sum of mean(sign(real margin)) since last adjustment
    signal_count: jax.Array  # int32 scalar: ada_observe calls since the last adjustment
    signal: jax.Array  # float32 scalar: the last completed estimate r_t (0 before the first)


def ada_init(p: float = 0.0) -> AdaState:
    """A fresh `AdaState` with probability ``p`` (ADA starts at 0) and empty accumulators."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"ADA's initial p must be in [0, 1], got {p}")
    return AdaState(
        p=jnp.asarray(p, jnp.float32),
        signal_sum=jnp.zeros((), jnp.float32),
        signal_count=jnp.zeros((), jnp.int32),
        signal=jnp.zeros((), jnp.float32),
    )


def ada_observe(state: AdaState, real_margin: jax.Array) -> AdaState:
    """Add one minibatch's overfitting signal ``mean(sign(real_margin))``.

    Args:
      state: the current state.
      real_margin: the discriminator's "real minus refined" logit margin on (augmented) real
        images, any shape (e.g. (N, h, w) patches); positive means judged real.

    Returns:
      The state with the signal added and ``signal_count`` one higher; ``p`` unchanged.
    """
    signal = jnp.mean(jnp.sign(real_margin).astype(jnp.float32))
    return state._replace(signal_sum=state.signal_sum + signal, signal_count=state.signal_count + 1)


def ada_adjust(
    state: AdaState, *, target: float, batch_size: int, interval: int, speed_images: float
) -> AdaState:
    """Every ``interval`` observations, move ``p`` towards keeping r_t at ``target``.

    Call once per step after `ada_observe`. When ``signal_count`` has reached ``interval`` it
    computes ``r_t = signal_sum / signal_count``, sets
    ``p <- clip(p + sign(r_t - target) * batch_size * interval / speed_images, 0, 1)``, stores
    r_t in ``signal`` and resets the accumulators; otherwise it returns ``state`` unchanged.
    Jit-able (``jnp.where``, no Python branch on traced values); the keyword arguments are
    static Python numbers.

    ADA's values (Karras et al. 2020) are ``target=0.6``, ``interval=4`` and
    ``speed_images=500 * 1000`` (`ADA_TARGET`, `ADA_INTERVAL`, `ADA_SPEED_IMAGES`): p can go
    from 0 to 1 in 500k real images. SimGAN runs on tiny data sets are far shorter than that
    (1000 steps of 64 images move p by at most 0.128), so they may need a smaller
    ``speed_images`` (e.g. 50k) for p to react within the run.

    Args:
      state: the current state.
      target: the r_t that p is steered to, in [0, 1].
      batch_size: real images per `ada_observe` call.
      interval: observations per adjustment, at least 1.
      speed_images: real images for p to move by 1, positive.
    """
    if interval < 1 or batch_size < 1 or not speed_images > 0:
        raise ValueError(
            f"ADA needs interval >= 1, batch_size >= 1 and speed_images > 0, got "
            f"interval={interval}, batch_size={batch_size}, speed_images={speed_images}"
        )
    ready = state.signal_count >= interval
    estimate = state.signal_sum / jnp.maximum(state.signal_count, 1).astype(jnp.float32)
    step = jnp.float32(batch_size * interval / speed_images)
    moved = jnp.clip(state.p + jnp.sign(estimate - target) * step, 0.0, 1.0)
    return AdaState(
        p=jnp.where(ready, moved, state.p),
        signal_sum=jnp.where(ready, jnp.zeros_like(state.signal_sum), state.signal_sum),
        signal_count=jnp.where(ready, jnp.zeros_like(state.signal_count), state.signal_count),
        signal=jnp.where(ready, estimate, state.signal),
    )
