"""Named bundles of defaults: `--preset` network shapes, and the settings each refiner kind
changes from the defaults (config.py holds the fields themselves)."""

from __future__ import annotations

from typing import Any

# Shrivastava et al. 2017, eye gaze (UnityEyes -> MPIIGaze), Sec. 3.1: the refiner's shape.
GAZE_REFINER: dict[str, Any] = {"width": 64, "blocks": 4, "kernel": 3}

PRESETS: dict[str, dict[str, Any]] = {
    # Shrivastava et al. 2017, eye gaze, Sec. 3.1.
    "gaze": {
        **GAZE_REFINER,
        "disc_layers": (
            ("conv", 3, 2, 96),
            ("conv", 3, 2, 64),
            ("pool", 3, 1),
            ("conv", 3, 1, 32),
            ("conv", 1, 1, 32),
            ("conv", 1, 1, 2),
        ),
    },
    # The default: the gaze refiner with a more local discriminator. The gaze discriminator's
    # receptive field (23 px) is the whole of a 16x16 image, so it judges images, not patches;
    # this one's is 7 px, and it kept more labels and gained more on the evaluation harness
    # (docs/training.md, "The default discriminator: local").
    "local": {
        **GAZE_REFINER,
        "disc_layers": (
            ("conv", 3, 2, 96),
            ("conv", 3, 1, 64),
            ("conv", 1, 1, 32),
            ("conv", 1, 1, 2),
        ),
    },
    # Shrivastava et al. 2017, hand pose (NYU depth), Sec. 3.2.
    "hand": {
        "width": 64,
        "blocks": 10,
        "kernel": 7,
        "disc_layers": (
            ("conv", 7, 4, 96),
            ("conv", 5, 2, 64),
            ("pool", 3, 2),
            ("conv", 3, 2, 32),
            ("conv", 1, 1, 32),
            ("conv", 1, 1, 2),
        ),
    },
    # For tests and smoke runs: the gaze shapes at a fraction of the width.
    "tiny": {
        "width": 8,
        "blocks": 1,
        "kernel": 3,
        "disc_layers": (
            ("conv", 3, 2, 8),
            ("conv", 3, 2, 8),
            ("pool", 3, 1),
            ("conv", 3, 1, 8),
            ("conv", 1, 1, 8),
            ("conv", 1, 1, 2),
        ),
    },
}

# What kind of refiner is trained (docs/refiners.md): the SimGAN ResNet, a fitted camera model
# (pixels never move, so labels stay valid by construction), the camera model followed by the
# ResNet for what a camera cannot explain, or a training-free baseline: histogram matching,
# Fourier domain adaptation or colour statistics transfer.
REFINERS = ("resnet", "acquisition", "acquisition+resnet", "histogram", "fda", "colour", "auto")
# A training-free kind's parameters are computed from the real images (refiners.fit_to_data):
# no step of any phase is run and no loss is weighted.
_TRAINING_FREE: dict[str, Any] = {
    "steps": 0,
    "pretrain_refiner_steps": 0,
    "pretrain_disc_steps": 0,
    "lambda_reg": 0.0,
    "lambda_label": 0.0,
}
# Settings a refiner kind changes from the defaults when they are not given: a camera model has
# a few dozen parameters, starts as the identity and cannot move pixels, so it needs no refiner
# pretraining, no self-regularisation and no label loss, and learns at a higher rate; its
# per-image spreads need the statistics term (docs/refiners.md: 1 beat 0 and 3).
REFINER_DEFAULTS: dict[str, dict[str, Any]] = {
    "resnet": {},
    "acquisition": {
        "steps": 1000,
        "pretrain_refiner_steps": 0,
        "lambda_reg": 0.0,
        "lambda_label": 0.0,
        "lr_refiner": 1e-2,
        "ema_decay": 0.99,
        "lambda_stats": 1.0,
    },
    "acquisition+resnet": {},
    # training-free: its quantile table is computed from the real images, no step is run
    "histogram": {**_TRAINING_FREE},
    # training-free: the real images' mean low-frequency amplitude, no step is run
    "fda": {**_TRAINING_FREE},
    # training-free: the real images' pooled mean and std per channel, no step is run
    "colour": {**_TRAINING_FREE},
    # fits candidate kinds in RUN/candidates/ with their own defaults (training/auto.py)
    "auto": {},
}

# What --init-from changes from the defaults when they are not given (training/transfer.py):
# the refiner starts trained, so pretraining it on self-regularisation alone would pull it back
# towards the identity; the discriminator starts trained too but on the source's real images,
# so it gets a short phase of its own on this run's before the refiner moves; and a quarter of
# the adversarial steps. A kind's own schedule gives way to this; a training-free kind still
# runs no step.
FINE_TUNE_DEFAULTS: dict[str, Any] = {
    "steps": 500,
    "pretrain_refiner_steps": 0,
    "pretrain_disc_steps": 100,
}


def kind_defaults(refiner: str, fine_tune: bool = False) -> dict[str, Any]:
    """The settings `refiner` changes from the defaults; with `fine_tune` (--init-from), the
    shorter schedule above, except for a training-free kind."""
    own = REFINER_DEFAULTS.get(refiner, {})
    if not fine_tune or refiner not in REFINER_DEFAULTS or own.get("steps") == 0:
        return own
    return {**own, **FINE_TUNE_DEFAULTS}


__all__ = [
    "FINE_TUNE_DEFAULTS",
    "GAZE_REFINER",
    "PRESETS",
    "REFINERS",
    "REFINER_DEFAULTS",
    "kind_defaults",
]
