"""The optimizers of both networks, built from the config."""

from __future__ import annotations

import optax

from ..config import TrainConfig


def refiner_learning_rate(config: TrainConfig) -> float | optax.Schedule:
    """--lr-pretrain-refiner for the refiner's pretraining updates, then --lr-refiner.

    The schedule reads the optimizer's own update count, which is in the state, so resume is
    exact. A constant when the two agree keeps the optimizer state of older runs loadable.
    """
    pretrain = config.lr_pretrain_refiner
    steps = config.pretrain_refiner_steps
    if pretrain is None or pretrain == config.lr_refiner or steps == 0:
        return config.lr_refiner
    return optax.join_schedules(
        [optax.constant_schedule(pretrain), optax.constant_schedule(config.lr_refiner)], [steps]
    )


def make_optimizer(config: TrainConfig, lr: float | optax.Schedule) -> optax.GradientTransformation:
    if config.optimizer == "sgd":
        opt = optax.sgd(lr)
    else:
        opt = optax.adam(lr, b1=0.5, b2=0.999)  # beta1 = 0.5: the usual GAN setting
    if config.grad_clip > 0:  # a global-norm clip caps the first steps after a saturated D
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
    return opt
