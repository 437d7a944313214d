"""The optimizers of both networks, built from the config."""

from __future__ import annotations

import jax
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


# The camera model's learning rate inside acquisition+resnet: its few dozen parameters are
# fitted at the rate an acquisition refiner uses (presets.REFINER_DEFAULTS), the ResNet's at
# --lr-refiner.
CAMERA_LR = 1e-2


def camera_learning_rate(config: TrainConfig) -> float | None:
    """The camera part's own rate under acquisition+resnet; None: one rate for everything."""
    return CAMERA_LR if config.refiner == "acquisition+resnet" else None


def make_optimizer(
    config: TrainConfig, lr: float | optax.Schedule, camera_lr: float | None = None
) -> optax.GradientTransformation:
    """The optimizer; with `camera_lr`, parameters under a top-level `camera` key get that rate."""
    if camera_lr is not None:
        return optax.multi_transform(
            {"camera": make_optimizer(config, camera_lr), "rest": make_optimizer(config, lr)},
            lambda params: jax.tree_util.tree_map_with_path(
                lambda path, _: "camera" if _top_key(path) == "camera" else "rest", params
            ),
        )
    if config.optimizer == "sgd":
        opt = optax.sgd(lr)
    else:
        opt = optax.adam(lr, b1=0.5, b2=0.999)  # beta1 = 0.5: the usual GAN setting
    if config.grad_clip > 0:  # a global-norm clip caps the first steps after a saturated D
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip), opt)
    return opt


def disc_optimizer(config: TrainConfig) -> optax.GradientTransformation:
    """The discriminator's optimizer. With --freeze-disc-layers K the first K convolutions get
    zero updates (optax.set_to_zero, no moments kept for them), inside the one compiled step;
    the gradient clip then measures the trained parameters only. Without, the optimizer and
    its state are as before the setting existed, so older checkpoints load."""
    opt = make_optimizer(config, config.lr_disc)
    frozen = config.freeze_disc_layers
    if frozen == 0:
        return opt

    def group(path, _) -> str:  # PatchDiscriminator's parameters: convs/<i>/..., embed
        return "frozen" if _top_key(path) == "convs" and _index(path) < frozen else "trained"

    return optax.multi_transform(
        {"frozen": optax.set_to_zero(), "trained": opt},
        lambda params: jax.tree_util.tree_map_with_path(group, params),
    )


def _index(path) -> int:
    second = path[1] if len(path) > 1 else None
    return int(getattr(second, "key", getattr(second, "idx", -1)))


def _top_key(path) -> str:
    first = path[0] if path else None
    return str(getattr(first, "key", getattr(first, "name", "")))
