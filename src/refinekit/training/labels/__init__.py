"""Class labels from folder layout, and which label-aware options a run uses.

A set is labelled when every image lies in a top-level subfolder of its root and there are
at least two such subfolders (the one rule in io/classes.py, which `gap-report` reads too): the
subfolder name is the class. The run records the synthetic class names in
`config.extra["classes"]` and whether the real folder has the same classes in
`config.extra["real_classes"]`, so a checkpoint's config alone rebuilds the same networks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...config import TrainConfig
from ...io import classes as classes_rule

NO_CLASS = -1


def folder_classes(paths: Sequence[Path], root: Path) -> list[str] | None:
    """Each image's top-level subfolder below `root`, or None unless every image has one and
    there are at least two distinct ones (io/classes.py)."""
    return classes_rule.folder_classes(_relative_names(paths, root))


def _relative_names(paths: Sequence[Path], root: Path) -> list[str]:
    root = Path(root)
    base = root if root.is_dir() else root.parent
    return [Path(path).relative_to(base).as_posix() for path in paths]


def class_ids(names: Sequence[str] | None, classes: Sequence[str], count: int) -> np.ndarray:
    """int32 (count,) class index per image; NO_CLASS outside `classes` or without names."""
    if names is None or not classes:
        return np.full((count,), NO_CLASS, np.int32)
    index = {c: i for i, c in enumerate(classes)}
    return np.array([index.get(n, NO_CLASS) for n in names], dtype=np.int32)


@dataclass(frozen=True)
class LabelData:
    """What load_training_data found: the class list (synthetic order) and per-image ids."""

    classes: list[str]
    synthetic: np.ndarray  # int32 (N,), NO_CLASS when the synthetic set has no classes
    real: np.ndarray  # int32 (M,), NO_CLASS unless the real folder has the same classes
    real_matches: bool
    single_folder: str | None = None  # every synthetic image is in this one subfolder


def find_labels(
    syn_paths: Sequence[Path], syn_root: Path, real_paths: Sequence[Path], real_root: Path
) -> LabelData:
    """Class ids for both sets. The real set counts as labelled only when its class folders
    are exactly the synthetic ones (the projection discriminator needs every class on both
    sides)."""
    syn_names = folder_classes(syn_paths, syn_root)
    classes = sorted(set(syn_names)) if syn_names else []
    real_names = folder_classes(real_paths, real_root) if classes else None
    matches = real_names is not None and set(real_names) == set(classes)
    return LabelData(
        classes,
        class_ids(syn_names, classes, len(syn_paths)),
        class_ids(real_names if matches else None, classes, len(real_paths)),
        matches,
        None if classes else classes_rule.single_folder(_relative_names(syn_paths, syn_root)),
    )


@dataclass(frozen=True)
class LabelPlan:
    """The label-aware parts of a run, and why each is on or off (printed at start)."""

    n_classes: int
    label_loss: bool
    conditional: bool
    content: str
    reasons: list[str] = field(default_factory=list)


def plan(config: TrainConfig) -> LabelPlan:
    """Resolve --lambda-label, --class-conditional and --content against the recorded classes."""
    classes = list(config.extra.get("classes", []))
    real_matches = bool(config.extra.get("real_classes", False))
    n = len(classes)
    reasons = []
    listed = ", ".join(classes[:6]) + (", ..." if n > 6 else "")
    single = config.extra.get("single_class_folder")
    if n == 0:
        label_loss = False
        what = (
            f"has one class subfolder ({single}); classes need at least two"
            if single
            else "has no class subfolders"
        )
        reasons.append(
            f"label loss off: the synthetic folder {what} "
            "(protect other labels with --content and --lambda-reg, see docs/labels.md)"
        )
    elif config.lambda_label <= 0:
        label_loss = False
        reasons.append(f"label loss off (--lambda-label 0) although {n} classes were found")
    else:
        label_loss = True
        reasons.append(
            f"label loss on: {n} class subfolders in the synthetic folder ({listed}); a frozen "
            f"classifier keeps each refined image in its class (lambda {config.lambda_label:g}; "
            "--lambda-label 0 turns it off)"
        )
    mode = config.class_conditional
    if mode == "off":
        conditional = False
        reasons.append("class-conditional discriminator off (--class-conditional off)")
    elif n and real_matches:
        conditional = True
        reasons.append(
            "class-conditional discriminator on: the real folder has the same class subfolders, "
            "so each class is compared with its own real images"
        )
    else:
        conditional = False
        why = "the synthetic folder has no classes" if not n else "its class subfolders differ"
        if not n and single:
            why = f"the synthetic folder has one class subfolder ({single}), no classes"
        reasons.append(
            f"class-conditional discriminator off: {why}"
            + ("" if not n else " from the real folder's (or it has none)")
        )
    content_why = {
        "l1": f"mean |psi(R(x)) - psi(x)| with psi {config.psi}",
        "lowpass": "L1 between low-pass (Gaussian-blurred) images: fine texture may change",
        "nce": "PatchNCE on the refiner's features (geometry) plus the L1 guard",
        "structure": "local edge orientation (structure tensor) kept, plus the L1 guard",
    }[config.content]
    reasons.append(f"content loss {config.content}: {content_why} (lambda {config.lambda_reg:g})")
    return LabelPlan(n, label_loss, conditional, config.content, reasons)


def check_conditional(config: TrainConfig) -> None:
    """--class-conditional on needs matching class folders on both sides."""
    from ...errors import ConfigError

    if config.class_conditional != "on":
        return
    if not config.extra.get("classes"):
        raise ConfigError(
            f"--class-conditional on: --synthetic {config.synthetic} has no class subfolders "
            "(expected SYNTHETIC/<class>/image files)"
        )
    if not config.extra.get("real_classes"):
        raise ConfigError(
            f"--class-conditional on: --real {config.real} needs the same class subfolders as "
            f"--synthetic ({', '.join(config.extra['classes'][:6])})"
        )


def config_extra(found: LabelData | None) -> dict:
    """config.extra entries that `plan` reads: the synthetic classes, and whether real ones match."""
    if found is None:
        return {"classes": [], "real_classes": False}
    extra = {"classes": list(found.classes), "real_classes": bool(found.real_matches)}
    if found.single_folder is not None:
        extra["single_class_folder"] = found.single_folder
    return extra


def id_arrays(
    found: LabelData | None, n_synthetic: int, n_real: int
) -> tuple[np.ndarray, np.ndarray]:
    """int32 class ids of the synthetic and real images (-1 = none)."""
    if found is None:
        return np.full(n_synthetic, -1, np.int32), np.full(n_real, -1, np.int32)
    return found.synthetic, found.real
