"""`resample_sets`: the library function behind `refinekit resample` (usable as an API).

Reads both sets the same way (gray, READ_SIZE, through io/sets.py; classes from folders,
io/classes.py), fits the weights of reweight.py, draws a resampled list, and writes one JSON
document (schema below) and, on request, the list as plain text, each atomically.

Schema "refinekit.resample/1":

    schema        "refinekit.resample/1"
    seed          int
    synthetic     {path, count, skipped [...]}; real the same
    weights_by    {method: "classes" | "content", description, clip [low, high] (times the
                   mean), clipped (count), effective_sample_size, classes: {names, real_share,
                   synthetic_share, weighted_share, only_in_synthetic, only_in_real} | null,
                   classifier: {l2, folds, held_out_log_loss, held_out_balanced_accuracy} | null}
    weights       [{path, weight}] per synthetic image, sorted by path; mean 1
    resampled     [path]: `count` draws (systematic resampling), sorted; a path appears about
                  count * weight / n times
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError
from ..io.classes import folder_classes
from ..io.sets import load_set
from . import reweight

SCHEMA = "refinekit.resample/1"
READ_SIZE = (32, 32)  # content features shrink to 8x8; the aspect ratio is not kept


@dataclass(frozen=True)
class Resampled:
    """What resample_sets wrote: the JSON document and the weights it holds."""

    document: dict
    weights: reweight.Weights


def check_arguments(synthetic, real, out, list_path, by, count) -> None:
    """Before any image is read: inputs exist, outputs are writable and land on no input."""
    from ..io import guard

    for flag, path in (("--synthetic", synthetic), ("--real", real)):
        if not Path(path).exists():
            raise UsageError(f"{flag} {path}: no such file or folder")
    if by not in reweight.METHODS:
        raise UsageError(f"--by {by}: must be one of {', '.join(reweight.METHODS)}")
    if count is not None and count < 1:
        raise UsageError(f"--count {count}: must be at least 1")
    read = [("--synthetic", Path(synthetic)), ("--real", Path(real))]
    for flag, path in (("--out", out), ("--list", list_path)):
        if path is not None:
            guard.check_output_file(flag, Path(path))
            guard.check_not_input(flag, Path(path), read)
    if list_path is not None and guard.real_path(Path(out)) == guard.real_path(Path(list_path)):
        raise UsageError(f"--out {out} and --list {list_path} are the same file")


def _read(root: Path, flag: str, strict: bool):
    loaded = load_set(root, flag=flag, channels=1, size=READ_SIZE, strict=strict)
    base = root if root.is_dir() else root.parent
    names = [p.relative_to(base).as_posix() for p in loaded.paths]
    order = sorted(range(len(names)), key=names.__getitem__)
    images = loaded.images[order]
    names = [names[i] for i in order]
    if len(names) < reweight.MIN_IMAGES:
        raise DataError(
            f"{flag} {root}: {len(names)} images; weights need at least {reweight.MIN_IMAGES}"
        )
    described = {"path": str(root), "count": len(names), "skipped": list(loaded.skipped)}
    return images, names, described


def resample_sets(
    synthetic: Path,
    real: Path,
    out: Path,
    list_path: Path | None = None,
    *,
    by: str = "auto",
    count: int | None = None,
    seed: int = 0,
    strict: bool = False,
) -> Resampled:
    """Weights that give the synthetic set the real set's content mix, written to `out` (JSON,
    schema above), and `count` resampled paths (default: as many as synthetic images) in the
    document and, with list_path, one per line there.

    by: "classes" (class folders in both sets), "content" (a domain classifier on
    appearance-blind features) or "auto" (classes when both sets have them).
    Raises UsageError/DataError for bad arguments or inputs, RefinekitError when a file cannot
    be written.
    """
    synthetic, real, out = Path(synthetic), Path(real), Path(out)
    check_arguments(synthetic, real, out, list_path, by, count)
    syn_images, syn_names, syn_info = _read(synthetic, "--synthetic", strict)
    real_images, real_names, real_info = _read(real, "--real", strict)
    syn_classes, real_classes = folder_classes(syn_names), folder_classes(real_names)
    reweight.choose_method(by, syn_classes, real_classes)  # a usage error before any fitting
    weights = reweight.fit_weights(
        syn_images, real_images, syn_classes, real_classes, by=by, seed=seed
    )
    picks = reweight.resample(weights.weights, count or len(syn_names), seed)
    document = {
        "schema": SCHEMA,
        "seed": seed,
        "synthetic": syn_info,
        "real": real_info,
        "weights_by": weights.to_dict(),
        "weights": [
            {"path": name, "weight": round(float(w), 6)}
            for name, w in zip(syn_names, weights.weights, strict=True)
        ],
        "resampled": [syn_names[i] for i in picks],
    }
    from .report_json import write_report

    write_report("--out", out, json.dumps(document, indent=1, allow_nan=False) + "\n")
    if list_path is not None:
        write_report("--list", Path(list_path), "".join(f"{p}\n" for p in document["resampled"]))
    return Resampled(document, weights)


def summary_line(result: Resampled) -> str:
    """One line for the terminal: the method, the effective sample size, the class shares."""
    w = result.weights
    n = len(w.weights)
    text = (
        f"weights by {w.method}: effective sample size {w.effective_sample_size:.0f} of {n}"
        f" ({w.clipped} clipped)"
    )
    if w.classes is not None:
        shares = ", ".join(
            f"{c} {w.classes['synthetic_share'][c]:.0%} -> {w.classes['weighted_share'][c]:.0%}"
            f" (real {w.classes['real_share'][c]:.0%})"
            for c in w.classes["names"]
        )
        text += f"; class shares {shares}"
    if w.classifier is not None:
        accuracy = w.classifier["held_out_balanced_accuracy"]
        text += f"; content classifier held-out accuracy {accuracy:.0%} (50% = same mix)"
    return text
