"""The optimizers of both networks, built from the config."""

from __future__ import annotations

import optax

from ..config import TrainConfig


def make_optimizer(config: TrainConfig, lr: float) -> optax.GradientTransformation:
    if config.optimizer == "sgd":
        opt = optax.sgd(lr)
    else:
        opt = optax.adam(lr, b1=0.5, b2=0.999)  # beta1 = 0.5: the usual GAN setting
    if config.grad_clip > 0:  # a global-norm clip caps the first steps after a saturated D
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
    return opt
