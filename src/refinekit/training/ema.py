"""An exponential moving average of the refiner's parameters (Yazici et al. 2019).

The average starts as a copy of the refiner when the adversarial phase begins and warms up
like TensorFlow's ExponentialMovingAverage(num_updates): the decay used at adversarial step
t is min(decay, (1 + t) / (10 + t)), so short runs are not dominated by the pretrained weights.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def effective_decay(decay: float, updates: jax.Array) -> jax.Array:
    """The decay applied after `updates` earlier EMA updates (int32 scalar)."""
    t = updates.astype(jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def update(average: Any, params: Any, decay: jax.Array) -> Any:
    """average <- decay * average + (1 - decay) * params, leaf by leaf."""
    return jax.tree.map(lambda a, p: a * decay + p * (1.0 - decay), average, params)
