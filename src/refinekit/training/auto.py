"""`--refiner auto`: fit candidate refiner kinds, keep the one that does most for a classifier.

Each candidate is an ordinary run in RUN/candidates/KIND (its own settings, checkpoints, scores
and resume). The camera model goes first: it fits in minutes and moves no pixel. Then:
- with labelled real images (a downstream score on every checkpoint, downstream/), the ResNet
  is fitted too and the candidate whose best checkpoint scores highest wins; raw synthetic
  stays the do-no-harm reference in the winner's best.json;
- without them, the camera model is kept unless its validation label retention falls below
  CAMERA_RETENTION (a camera that blurs thin strokes away loses labels although no pixel moves),
  and then the ResNet is fitted and kept.
The winner's run folder is copied into RUN, so `refine --run RUN`, `export` and `gap-report`
use it as any run; RUN/auto.json records every candidate's scores and why one won.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..events import Note, OnEvent
from ..io.atomic import atomic_copy, atomic_write
from . import selection

CANDIDATES = ("acquisition", "resnet")
CAMERA_RETENTION = 0.90
AUTO_FILE = "auto.json"
CANDIDATES_FOLDER = "candidates"
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
    from .runfolder import settings_for_run

    run = Path(config.out)
    given = explicit_settings(config)
    summaries: dict[str, dict] = {}
    result = None
    for kind in CANDIDATES:
        folder = run / CANDIDATES_FOLDER / kind
        emit(Note("train", "info", f"--refiner auto: fitting the {kind} candidate in {folder}"))
        candidate = settings_for_run(
            {**given, "out": str(folder), "refiner": kind}, source="--refiner auto"
        )
        result = train(candidate, emit, should_stop)
        summaries[kind] = _summary(folder)
        if kind == "acquisition" and not _needs_resnet(summaries[kind]):
            break
    chosen, reason = choose(summaries)
    _publish(run / CANDIDATES_FOLDER / chosen, run)
    record = {"chosen": chosen, "reason": reason, "candidates": summaries}
    atomic_write(run / AUTO_FILE, (json.dumps(record, indent=1) + "\n").encode())
    emit(Note("train", "info", f"--refiner auto chose {chosen}: {reason}"))
    assert result is not None
    return dataclasses.replace(result, run=run)


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
        "helped": selection.helped(best) if best else None,
    }


def _needs_resnet(camera: dict) -> bool:
    if camera["step"] is None:
        return True  # no healthy camera checkpoint
    if camera["downstream"] is not None:
        return True  # a classifier can tell: let it compare both
    retention = camera["retention"]
    return retention is not None and retention < CAMERA_RETENTION


def choose(summaries: dict[str, dict]) -> tuple[str, str]:
    """The winning kind and why (see the module docstring)."""
    healthy = {k: s for k, s in summaries.items() if s["step"] is not None}
    if not healthy:
        return next(iter(summaries)), "no candidate had a healthy checkpoint"
    scored = {k: s for k, s in healthy.items() if s["downstream"] is not None}
    if scored:
        kind = max(scored, key=lambda k: (scored[k]["downstream"], k == "acquisition"))
        listed = ", ".join(f"{k} {s['downstream']:.3f}" for k, s in scored.items())
        return kind, f"highest downstream accuracy on held-out real images ({listed})"
    camera = healthy.get("acquisition")
    if camera is not None and not _needs_resnet(camera):
        if camera["retention"] is None:
            return "acquisition", "a camera model moves no pixel (no classes to check labels)"
        return (
            "acquisition",
            f"the camera model kept labels (validation retention {camera['retention']:.3f} "
            f">= {CAMERA_RETENTION})",
        )
    if "resnet" in healthy:
        return "resnet", (
            f"the camera model lost labels (validation retention {camera['retention']:.3f} < "
            f"{CAMERA_RETENTION})"
            if camera is not None and camera["retention"] is not None
            else "the camera model had no healthy checkpoint"
        )
    return next(iter(healthy)), "the only candidate with a healthy checkpoint"


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
