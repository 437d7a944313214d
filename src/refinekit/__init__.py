"""refinekit: SimGAN refinement of synthetic images, in JAX.

Library use (no CLI needed)::

    from refinekit import TrainConfig, train
    train(TrainConfig(synthetic="syn/", real="real/", out="runs/demo", steps=500))
"""

__version__ = "0.1.0"

__all__ = ["__version__"]

from .config import TrainConfig  # noqa: E402
from .train import TrainResult, train  # noqa: E402

__all__ += ["TrainConfig", "TrainResult", "train"]
