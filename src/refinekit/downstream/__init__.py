"""Does refinement help a model? A small CNN trained on (refined) synthetic images and tested on
labelled real ones: the score that chooses checkpoints and refiner kinds when the real set has
class folders, and that gap-report splits the gap with (docs/training.md, docs/gap-report.md)."""

from .score import Downstream, better_than, score_training_set

__all__ = ["Downstream", "better_than", "score_training_set"]
