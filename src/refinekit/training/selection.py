"""Which checkpoint `refine --run`, `gap-report --run` and `export` use (docs/training.md).

Every checkpoint gets one line in RUN/scores.jsonl: its step, phase, health codes and (with a
validation split) its scores. The best checkpoint is chosen among the HEALTHY checkpoints of
the adversarial phase:
1. when label retention was scored, keep those within RETENTION_TOLERANCE of the best
   retention among them (labels first: a realistic image with the wrong label is a wrong
   training example);
2. of those, the highest downstream accuracy when it was measured (a small CNN trained on the
   checkpoint's refined images, tested on held-out real images in the synthetic class
   folders: downstream/), else the lowest headline distance; ties go to the later step;
3. without validation scores, the latest healthy one.
Do no harm: raw synthetic is scored too, and when the chosen checkpoint does not beat it beyond
noise, the choice carries a warning that says to train on the raw synthetic set.
The choice also warns when its retention is more than LABELS_AT_RISK below the last
pretraining checkpoint's (or, in a run with none, the unrefined images'): every adversarial
checkpoint has cost labels (with 50 real images the stroke case fell from 0.94 to 0.62, and
judges trained on its refined images scored ~19 points below raw synthetic,
docs/evaluation.md). Not when the downstream score shows a gain beyond noise.
A run whose adversarial checkpoints are all unhealthy has no best checkpoint: the commands
stop with exit code 1 unless `--step latest` or `--step N` asks for one anyway.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError, DataError, RefinekitError, UsageError
from ..io.atomic import atomic_write
from ..io.regular import check_own, read_own_json, read_own_jsonl
from . import checkpoint

SCORES_FILE = "scores.jsonl"
BEST_FILE = "best.json"
RETENTION_TOLERANCE = 0.02
LABELS_AT_RISK = 0.15
CEILING = 0.99  # downstream accuracy with nothing left to gain
# Half-width of the interval against raw synthetic above which a positive difference is called
# "not shown" rather than "did not help" (16 held-out images: about 0.24; 80: 0.05-0.10).
TOO_FEW_TO_TELL = 0.15


class NoHealthyCheckpoint(RefinekitError):
    """Every adversarial checkpoint of the run was flagged by the health monitor."""


@dataclass(frozen=True)
class Choice:
    step: int | None
    reason: str
    warning: str | None = None  # labels at risk (above); the commands print it


def read_scores(run: Path) -> list[dict]:
    """scores.jsonl records, the last one per step (a resumed run may repeat a step)."""
    path = Path(run) / SCORES_FILE
    if not check_own(path):  # a link or a FIFO there is an error naming it, never followed
        return []
    by_step: dict[int, dict] = {}
    for record in read_own_jsonl(path):  # bytes that are not UTF-8: an error naming the file
        try:
            by_step[int(record["step"])] = record
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill
    return [by_step[s] for s in sorted(by_step)]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def choose_best(records: list[dict], history: list[dict] | None = None) -> Choice:
    """The best checkpoint among `records` (scores.jsonl lines), by the rule above.

    history: every scores.jsonl line, for the pretraining reference of the warning when
    `records` holds only the checkpoints still on disk (default: `records`)."""
    # "fitted": the one checkpoint of a training-free kind (refiners/histogram.py)
    adversarial = [r for r in records if r.get("phase") in ("adversarial", "fitted")]
    healthy = [r for r in adversarial if r.get("healthy")]
    if not adversarial:
        return Choice(None, "no checkpoint of the adversarial phase yet")
    if not healthy:
        return Choice(None, f"all {len(adversarial)} adversarial checkpoints were unhealthy")
    candidates = healthy
    with_retention = [r for r in healthy if _finite(r.get("retention"))]
    kept = ""
    if with_retention:
        top = max(r["retention"] for r in with_retention)
        candidates = [r for r in with_retention if r["retention"] >= top - RETENTION_TOLERANCE]
        kept = f" among retention >= {top - RETENTION_TOLERANCE:.3f}"
    judged = [r for r in candidates if _downstream(r) is not None]
    scored = [r for r in candidates if _finite(r.get("distance"))]
    if judged:
        best = max(judged, key=lambda r: (_downstream(r) or 0.0, r["step"]))
        reason = f"highest downstream accuracy{kept}: {_downstream(best) or 0.0:.3f}"
    elif scored:
        best = min(scored, key=lambda r: (r["distance"], -r["step"]))
        reason = f"lowest distance{kept}: distance {best['distance']:.4g}"
    else:
        best = candidates[-1]
        reason = "latest healthy checkpoint (no validation scores)"
        return Choice(
            best["step"], reason, _labels_warning(records if history is None else history, best)
        )
    if _finite(best.get("retention")):
        reason += f", retention {best['retention']:.3f}"
    warnings = [
        w
        for w in (
            _labels_warning(records if history is None else history, best),
            _no_help_warning(best),
        )
        if w
    ]
    return Choice(best["step"], f"best healthy checkpoint ({reason})", "; ".join(warnings) or None)


def _downstream(record: dict) -> float | None:
    value = (record.get("downstream") or {}).get("accuracy")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def helped(record: dict) -> bool | None:
    """Whether the checkpoint's downstream score beats raw synthetic beyond noise (the paired
    interval's low end above 0); None when it was not measured."""
    vs_raw = (record.get("downstream") or {}).get("vs_raw")
    if not vs_raw:
        return None
    return bool(vs_raw["interval"][0] > 0)


def _no_help_warning(best: dict) -> str | None:
    """Do no harm: raw synthetic is always a candidate, and said to be the better one when no
    checkpoint beat it beyond noise."""
    if helped(best) is not False:
        return None
    ds = best["downstream"]
    low, high = ds["vs_raw"]["interval"]
    raw = ds["raw_synthetic"]["accuracy"]
    if raw >= CEILING and ds["accuracy"] >= CEILING:
        return (
            f"refinement did not help a classifier on your held-out real images: a small CNN "
            f"trained on the raw synthetic images already scores {raw:.3f} on them (refined: "
            f"{ds['accuracy']:.3f}, {ds['test_images']} real test images), so there is nothing "
            "left for refinement to add for such a model; train on the raw synthetic set, or "
            "hold out more, harder real images to see a difference"
        )
    scores = (
        f"a small CNN trained on refined images scored {ds['accuracy']:.3f}, on the raw "
        f"synthetic images {ds['raw_synthetic']['accuracy']:.3f} (difference "
        f"{ds['vs_raw']['difference']:+.3f}, 90% interval {low:+.3f} to {high:+.3f}, "
        f"{ds['test_images']} real test images)"
    )
    if ds["vs_raw"]["difference"] > 0:
        # A gain too uncertain to show is not a loss: say so, and what would settle it (on the
        # colour case +0.021 on 80 held-out images was +8 points on 1,000 test images).
        if (high - low) / 2 > TOO_FEW_TO_TELL:
            settle = (
                "too few to tell; train on the raw synthetic set to be safe, or sort more "
                "real images into the class folders so more are held out"
            )
        else:
            settle = (
                "train on the raw synthetic set to be safe, or hold out more labelled real "
                "images to tell, or compare other --refiner kinds with gap-report"
            )
        return (
            "refinement was not shown to help a classifier on your held-out real images: "
            f"{scores}, {settle}"
        )
    return (
        f"refinement did not help a classifier on your held-out real images: {scores}; train "
        "on the raw synthetic set, or compare other --refiner kinds with gap-report"
    )


def _labels_warning(records: list[dict], best: dict) -> str | None:
    if not _finite(best.get("retention")) or helped(best):
        # a classifier trained on the refined images beat raw synthetic on real ones: the
        # labels that matter were kept, whatever the synthetic-trained classifier reads
        return None
    before = [r for r in records if r.get("phase") != "adversarial" and _finite(r.get("retention"))]
    if before:
        reference = before[-1]["retention"]
        where = f"before the adversarial phase (step {before[-1]['step']})"
    elif _finite(best.get("retention_unrefined")):
        reference = best["retention_unrefined"]
        where = "for the unrefined synthetic images"
    else:
        return None
    if best["retention"] >= reference - LABELS_AT_RISK:
        return None
    if "camera" in best:  # a camera model has no self-regularisation or label loss to raise
        advice = (
            "Look at the fitted camera on the run page (a strong blur, vignetting or resolution "
            "loss erases shapes), try --refiner resnet, or give labelled real images"
        )
    else:
        advice = (
            "Try a larger --lambda-reg or --lambda-label, and --augment ada if it is off "
            "(--augment auto turns it on below 100 real images)"
        )
    return (
        f"labels at risk: validation label retention {best['retention']:.3f} at step "
        f"{best['step']} against {reference:.3f} {where}; every adversarial checkpoint lost "
        f"labels. {advice}. Check gap-report's label retention before training on these images"
    )


def write_best(run: Path, records: list[dict]) -> Choice:
    choice = choose_best(records)
    record: dict = {"step": choice.step, "reason": choice.reason, "warning": choice.warning}
    chosen = [r for r in records if r.get("step") == choice.step]
    if chosen and "camera" in chosen[-1]:  # what a camera model learned (acquisition.describe)
        record["camera"] = chosen[-1]["camera"]
    if chosen and chosen[-1].get("downstream"):
        ds = chosen[-1]["downstream"]
        record["downstream"] = {k: v for k, v in ds.items() if k != "raw_synthetic"}
        record["raw_synthetic"] = ds["raw_synthetic"]
        record["helped"] = helped(chosen[-1])
    else:
        record["downstream"] = None
        record["downstream_note"] = (
            "downstream benefit not measured: it needs real images in folders named like the "
            "synthetic classes (at least 2 per class held out)"
        )
    atomic_write(Path(run) / BEST_FILE, (json.dumps(record) + "\n").encode())
    return choice


def best_step(run: Path) -> int | None:
    """The step recorded in RUN/best.json (kept by --keep pruning), or None."""
    path = Path(run) / BEST_FILE
    if not check_own(path):
        return None
    try:
        step = read_own_json(path).get("step")
    except DataError:
        return None  # damaged: rewritten at the next checkpoint, never needed to choose
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def parse_step(text: str | None) -> int | str | None:
    """--step: None (the best), "latest", or a step number."""
    if text is None or text == "best":
        return None
    if text == "latest":
        return "latest"
    try:
        return int(text)
    except ValueError:
        raise UsageError(f"--step {text}: expected a step number, 'latest' or 'best'") from None


def resolve(run: Path, requested: int | str | None) -> Choice:
    """The checkpoint step a command should load from `run`, and why."""
    run = Path(run)
    available = checkpoint.steps(run)
    if not available:
        raise CheckpointError(
            f"{run}: no checkpoint found in {checkpoint.checkpoint_dir(run)} (train first, or check the path)"
        )
    if isinstance(requested, str) and requested.strip().isdigit():
        requested = int(requested)  # "12" from a library caller means step 12, as on the CLI
    if isinstance(requested, str) and requested not in ("best", "latest"):
        raise UsageError(f"--step {requested}: expected best, latest or a step number")
    if requested == "latest":
        return Choice(available[-1], "latest checkpoint (--step latest)")
    if isinstance(requested, int):
        return Choice(checkpoint.pick_step(run, requested), "chosen with --step")
    history = read_scores(run)
    records = [r for r in history if r["step"] in available]
    if not records:
        return Choice(available[-1], "latest checkpoint (this run has no scores.jsonl)")
    choice = choose_best(records, history)
    if choice.step is None:
        if not any(r.get("phase") == "adversarial" for r in records):
            return Choice(available[-1], "latest checkpoint (no adversarial checkpoint yet)")
        raise NoHealthyCheckpoint(
            f"{run}: no healthy checkpoint ({choice.reason}; see {run / 'index.html'}); "
            "retrain with the advice in metrics.jsonl, or pass --step latest or --step N to "
            "use one anyway"
        )
    return choice
