"""The three phases of a run over the global step: refiner pretraining, discriminator
pretraining, adversarial."""

from __future__ import annotations

from ..config import TrainConfig


def phase_of(config: TrainConfig, step: int) -> str:
    if step < config.pretrain_refiner_steps:
        return "pretrain_refiner"
    if step < config.pretrain_refiner_steps + config.pretrain_disc_steps:
        return "pretrain_disc"
    return "adversarial"


def phase_end(config: TrainConfig, step: int) -> int:
    p1 = config.pretrain_refiner_steps
    p2 = p1 + config.pretrain_disc_steps
    return p1 if step < p1 else p2 if step < p2 else config.total_steps


def next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every
