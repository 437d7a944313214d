"""refinekit: SimGAN refinement of synthetic images, in JAX.

The public API::

    import refinekit
    refinekit.train({"synthetic": "syn/", "real": "real/", "out": "runs/demo", "steps": 500})
    refiner = refinekit.load_refiner(run="runs/demo")
    refinekit.refine_folder("syn/", "refined/", refiner)
    report = refinekit.gap_report(real="real/", synthetic="syn/", refined="refined/")

Each long job takes `on_event=`, which receives the typed events of `refinekit.events`
(Started, Stage, Progress, Note, Saved, Finished). See docs/api.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import events
from .config import TrainConfig

__version__ = "0.1.0"

# The rest is imported on first use (JAX and Flax load only when needed):
# public name -> the module that defines it.
_LAZY = {
    "train": "refinekit.training.loop",
    "TrainResult": "refinekit.training.loop",
    "Refiner": "refinekit.inference",
    "load_refiner": "refinekit.inference",
    "export_refiner": "refinekit.inference",
    "refine_folder": "refinekit.refine",
    "RefineSummary": "refinekit.refine",
    "gap_report": "refinekit.gap.run",
    "GapReport": "refinekit.gap.run",
    "RefinekitError": "refinekit.errors",
}

__all__ = [
    "__version__",
    "events",
    "TrainConfig",
    "TrainResult",
    "train",
    "Refiner",
    "load_refiner",
    "export_refiner",
    "refine_folder",
    "RefineSummary",
    "gap_report",
    "GapReport",
    "RefinekitError",
]

if TYPE_CHECKING:
    from .errors import RefinekitError
    from .gap.run import GapReport, gap_report
    from .inference.refiner import Refiner, export_refiner, load_refiner
    from .refine import RefineSummary, refine_folder
    from .training.loop import TrainResult, train


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'refinekit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
