"""`--refiner auto`: fit candidate refiner kinds, keep the one that does most for a classifier.

Each candidate is an ordinary run in RUN/candidates/KIND (its own settings, checkpoints, scores
and resume): the camera model first (minutes; no pixel moves), then the ResNet. The winner:
- with labelled real images (a downstream score on every checkpoint, downstream/), the one
  candidate whose classifier beats raw synthetic beyond noise, when only one does (the other
  would hand over a refiner with the do-no-harm warning); else the candidate whose best
  checkpoint trains the better classifier on held-out real images, when the two differ by more
  than the scores' noise (the larger half-width of their intervals against raw synthetic);
- within the scores' noise, the candidate closer to the held-out real images by the
  validation distance: a camera that explains the gap leaves little of it, one that cannot
  (thicker strokes, another texture) leaves more than the ResNet; but when the two distances
  are also within their own noise (less than DISTANCE_NOISE apart), the higher score still
  decides: both signals are weak then, and the score is the one about a classifier;
- without labelled real images, the distance.
Raw synthetic stays the do-no-harm reference in the winner's best.json. The winner's run folder
is copied into RUN, so `refine --run RUN`, `export` and `gap-report` use it as any run;
RUN/auto.json records every candidate's scores and why one won.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError
from ..events import Note, OnEvent
from ..io.atomic import atomic_copy, atomic_write
from . import selection
from .augment import parse_policy
from .data import check_before_reading

CANDIDATES = ("acquisition", "resnet")
# The validation distance is in units of a real half's own bootstrap spread (gap/scores.py):
# two candidates closer than one unit are as close to the real images as each other. On the
# harness with 50 real images (16 held out) texture's candidates were 0.05 apart, and the
# distance kept a ResNet that cost the pixel judges 8-9 points where the camera, which scored
# higher downstream, gained 6-9 (docs/refiners.md).
DISTANCE_NOISE = 1.0
AUTO_FILE = "auto.json"
CANDIDATES_FOLDER = "candidates"  # runfolder.is_auto_run looks for it
# What a candidate run folder holds that RUN gets (the rest, like its lock, stays).
PUBLISHED = (
    "config.json",
    "scores.jsonl",
    "best.json",
    "metrics.jsonl",
    "validation.json",
    "index.html",
    "checkpoints",
    "samples",
)


def explicit_settings(config: TrainConfig) -> dict[str, Any]:
    """The settings of an auto config that differ from the defaults: each candidate takes
    them, and its own kind's defaults for the rest."""
    out = {}
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in ("refiner", "extra") or value == f.default:
            continue
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out


def train_auto(
    config: TrainConfig, emit: OnEvent, should_stop: Callable[[], bool], train: Callable
) -> Any:
    """Fit the candidates in turn (each resumes like any run), choose, publish into RUN."""
    from .runfolder import is_auto_run, settings_for_run

    if not config.out:
        raise ConfigError("--out: a run folder is required")
    run = Path(config.out)
    if (run / "config.json").is_file() and not is_auto_run(run):
        raise ConfigError(
            f"--out {run}: holds a run of one refiner kind ({_kind_of(run)}), not an auto run; "
            "pass its --refiner to resume it, or choose another --out"
        )
    given = explicit_settings(config)
    candidates = {
        kind: settings_for_run(
            {**given, "out": str(run / CANDIDATES_FOLDER / kind), "refiner": kind},
            source="--refiner auto",
        )
        for kind in CANDIDATES
    }
    for candidate in candidates.values():  # a usage error: one line, before any work
        parse_policy(candidate.augment_policy, candidate.channels or 3)
        check_before_reading(candidate)
    summaries: dict[str, dict] = {}
    result = None
    for kind, candidate in candidates.items():
        folder = Path(candidate.out)
        emit(Note("train", "info", f"--refiner auto: fitting the {kind} candidate in {folder}"))
        result = train(candidate, emit, should_stop)
        summaries[kind] = _summary(folder)
    chosen, reason = choose(summaries)
    _publish(run / CANDIDATES_FOLDER / chosen, run)
    record = {"chosen": chosen, "reason": reason, "candidates": summaries}
    atomic_write(run / AUTO_FILE, (json.dumps(record, indent=1) + "\n").encode())
    emit(Note("train", "info", f"--refiner auto chose {chosen}: {reason}"))
    assert result is not None
    return dataclasses.replace(result, run=run)


def _kind_of(run: Path) -> str:
    try:
        return str(json.loads((run / "config.json").read_text()).get("refiner", "resnet"))
    except (OSError, ValueError, AttributeError):
        return "unreadable config.json"


def _summary(folder: Path) -> dict:
    """A candidate's best checkpoint and its scores (from its scores.jsonl)."""
    records = selection.read_scores(folder)
    choice = selection.choose_best(records)
    best = next((r for r in records if r["step"] == choice.step), {})
    downstream = best.get("downstream") or None
    return {
        "step": choice.step,
        "reason": choice.reason,
        "warning": choice.warning,
        "retention": best.get("retention"),
        "distance": best.get("distance"),
        "downstream": None if downstream is None else downstream.get("accuracy"),
        "downstream_noise": None if downstream is None else _noise(downstream),
        "helped": selection.helped(best) if best else None,
    }


def _noise(downstream: dict) -> float | None:
    """Half the width of the paired interval against raw synthetic: how far apart two
    candidates' scores on these test images must be to tell them apart."""
    interval = (downstream.get("vs_raw") or {}).get("interval")
    return None if not interval else (interval[1] - interval[0]) / 2


def choose(summaries: dict[str, dict]) -> tuple[str, str]:
    """The winning kind and why (see the module docstring)."""
    healthy = {k: s for k, s in summaries.items() if s["step"] is not None}
    if not healthy:
        return next(iter(summaries)), "no candidate had a healthy checkpoint"
    if len(healthy) == 1:
        return next(iter(healthy)), "the only candidate with a healthy checkpoint"
    helped = [k for k, s in healthy.items() if s.get("helped")]
    if len(helped) == 1:  # the only one shown to beat raw synthetic beyond noise
        kind = helped[0]
        listed = ", ".join(
            f"{k} {s['downstream']:.3f}" for k, s in healthy.items() if s["downstream"] is not None
        )
        return kind, (
            f"the only candidate a classifier trained on its output scores above raw synthetic "
            f"beyond noise on held-out real images ({listed})"
        )
    told_apart = ""
    distances = {k: s["distance"] for k, s in healthy.items() if _finite(s["distance"])}
    scored = {k: s for k, s in healthy.items() if s["downstream"] is not None}
    if len(scored) == len(healthy):
        ranked = sorted(scored, key=lambda k: scored[k]["downstream"], reverse=True)
        gap = scored[ranked[0]]["downstream"] - scored[ranked[1]]["downstream"]
        noise = max((s["downstream_noise"] or 0.0) for s in scored.values())
        listed = ", ".join(f"{k} {s['downstream']:.3f}" for k, s in scored.items())
        if gap > noise:
            return ranked[0], (
                f"a classifier trained on its output scores highest on held-out real images "
                f"({listed}; apart by more than their noise, {noise:.3f})"
            )
        told_apart = f"; a classifier could not tell them apart ({listed}, noise {noise:.3f})"
        measured = len(distances) == len(healthy)
        if gap > 0 and not (
            measured and max(distances.values()) - min(distances.values()) >= DISTANCE_NOISE
        ):
            close = (
                "the candidates are as close to the real images as each other (distance "
                + ", ".join(f"{k} {d:.3f}" for k, d in distances.items())
                + f"; apart by less than {DISTANCE_NOISE:g})"
                if measured
                else "no distance to tell them apart"
            )
            return ranked[0], (
                f"a classifier trained on its output scores highest on held-out real images, "
                f"by less than the scores' noise ({listed}, noise {noise:.3f}), and {close}: "
                f"more labelled real images would tell"
            )
    if distances:
        kind = min(distances, key=lambda k: (distances[k], k != "acquisition"))
        listed = ", ".join(f"{k} {d:.3f}" for k, d in distances.items())
        return kind, f"closest to the held-out real images (distance {listed}){told_apart}"
    kind = "acquisition" if "acquisition" in healthy else next(iter(healthy))
    return kind, f"no validation distance to compare: the camera model moves no pixel{told_apart}"


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _publish(source: Path, run: Path) -> None:
    """Copy the winner's run files into RUN, file by file, each atomically; what an earlier
    choice left there goes first."""
    for name in PUBLISHED:
        target = run / name
        if target.is_dir():
            shutil.rmtree(target)
        src = source / name
        if src.is_dir():
            for path in sorted(p for p in src.rglob("*") if p.is_file()):
                atomic_copy(path, target / path.relative_to(src))
        elif src.is_file():
            atomic_copy(src, target)
