"""What the training loop (loop.py) does around the steps: the validation split, the health monitor
at every log, scores at every checkpoint (scores.jsonl, best.json), --keep pruning that spares
the best checkpoint, and RUN/index.html (docs/training.md).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import RefinekitError
from ..events import Note, OnEvent, Saved
from ..io import pixels
from ..io.atomic import atomic_write
from . import selection, validation, watch_page
from .health import HealthMonitor

DOWNSTREAM_CHUNK = 256  # images refined per call for the downstream score


class CollapseStopped(RefinekitError):
    """--on-collapse stop: the health monitor flagged a collapse sign."""


@dataclass
class HeldOut:
    """Held-out images as float32 NHWC in [0, 1] (empty when validation is off)."""

    split: validation.Split
    real: np.ndarray
    synthetic: np.ndarray
    labels: np.ndarray | None  # int (n,) classes of the held-out synthetic images
    real_labels: np.ndarray | None = None  # int (m,) classes of the held-out real images


def split_off(data, config, run: Path, primary: bool = True):
    """Remove the validation images from `data` (a data.TrainingData); returns (data, HeldOut).
    Only the `primary` process writes a new split to the run folder.

    data.labels (labels.LabelData) is sliced the same way, so classes stay aligned."""
    found = data.labels
    syn_labels = None
    if found is not None and (found.synthetic >= 0).any():
        syn_labels = found.synthetic
    # Real images in the synthetic class folders: the split is stratified and keeps their
    # classes, so checkpoints can be scored by a classifier tested on them (downstream).
    real_labels = None
    if found is not None and found.real_matches and config.downstream != "off":
        real_labels = found.real
    split = validation.load_or_draw(
        run,
        len(data.real),
        len(data.synthetic),
        syn_labels,
        config.val_fraction,
        config.seed,
        write=primary,
        real_labels=real_labels,
    )
    real_val = pixels.to_unit_float(data.real[split.real])
    syn_val = pixels.to_unit_float(data.synthetic[split.synthetic])
    val_labels = None if syn_labels is None else syn_labels[split.synthetic]
    val_real_labels = None if real_labels is None else real_labels[split.real]
    if split.empty:
        return data, HeldOut(split, real_val, syn_val, None)
    keep_real = validation.remaining(len(data.real), split.real)
    keep_syn = validation.remaining(len(data.synthetic), split.synthetic)
    if found is not None:
        found = dataclasses.replace(
            found, synthetic=found.synthetic[keep_syn], real=found.real[keep_real]
        )
    trimmed = dataclasses.replace(
        data, synthetic=data.synthetic[keep_syn], real=data.real[keep_real], labels=found
    )
    return trimmed, HeldOut(split, real_val, syn_val, val_labels, val_real_labels)


class RunWatcher:
    """Health at every log, scores at every checkpoint, best.json, pruning and index.html."""

    def __init__(
        self,
        run: Path,
        config,
        fns,
        held: HeldOut,
        emit: OnEvent,
        primary: bool,
        data_shift: float = 0.0,
        synthetic: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        """synthetic: the training synthetic images (stored dtype) and their class ids, for the
        downstream score when the held-out real images have classes."""
        self.run, self.config, self.fns, self.held = Path(run), config, fns, held
        self.emit, self.primary = emit, primary
        self.monitor = HealthMonitor(data_shift=data_shift)
        self.records = selection.read_scores(self.run)
        self.latest_sample: Path | None = None
        self.validate = None
        self._unrefined_retention: float | None = None
        self._said_unreadable = False
        if not held.split.empty:
            import jax

            self.validate = jax.jit(fns._counted("validate", fns._refine))
        self.judge: Any = None
        self.judged_raw: np.ndarray | None = None
        self.judged_source: np.ndarray | None = None
        self.refine_chunk: Any = None
        if held.real_labels is not None and synthetic is not None and (synthetic[1] >= 0).all():
            import jax

            from ..downstream import classifier as downstream_classifier
            from ..downstream.judge import CandidateJudge

            images, ids = synthetic
            self.judge = CandidateJudge(
                ids,
                held.real,
                held.real_labels,
                int(max(ids.max(), held.real_labels.max())) + 1,
                config.seed,
            )
            # The scored images are kept at the classifier's size (at most 32 pixels a side),
            # so MAX_TRAIN large images never sit in memory as floats at once.
            self.judged_source = images[self.judge.train_index]
            self.judged_raw = np.concatenate(
                [
                    downstream_classifier.prepare(pixels.to_unit_float(part))
                    for part in _chunks(self.judged_source)
                ]
            )
            self.refine_chunk = jax.jit(fns._counted("downstream", fns._refine))

    def resume(self, start: int) -> None:
        """Replay metrics.jsonl into the monitor; drop score lines after the resumed step."""
        path = self.run / "metrics.jsonl"
        if path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line]
            self.monitor.replay([r for r in lines if r["step"] <= start])
        self.records = [r for r in self.records if r["step"] <= start]
        if self.primary:
            self._write_scores()
        samples = sorted((self.run / "samples").glob("step_*.png"))
        self.latest_sample = samples[-1] if samples else None

    def on_log(self, record: dict) -> dict:
        """Adds record["health"] (codes, [] when healthy); warns, or stops with --on-collapse stop."""
        warnings = self.monitor.check(record)
        record["health"] = [w.code for w in warnings]
        for warning in warnings:
            self.emit(
                Note("train", "health", warning.text(), record["step"], {"code": warning.code})
            )
        return record

    def stop_if_collapsed(self, record: dict) -> None:
        if self.config.on_collapse == "stop" and record["health"]:
            best = selection.choose_best(self.records)
            where = f"best checkpoint so far: step {best.step}" if best.step else best.reason
            raise CollapseStopped(
                f"step {record['step']}: {', '.join(record['health'])} (--on-collapse stop); "
                f"training stopped without saving this step ({where}); see "
                f"{self.run / 'metrics.jsonl'} for what to try"
            )

    def score(self, state, step: int, phase: str) -> dict:
        """The checkpoint's scores record (EMA weights on the held-out images)."""
        record: dict[str, Any] = {
            "step": step,
            "phase": phase,
            # a training-free kind's one checkpoint has no training to watch
            "healthy": phase == "fitted" or self.monitor.healthy_at(step),
            "health": self._codes_at(step),
            "distance": None,
            "retention": None,
        }
        if self.validate is not None:
            import jax.numpy as jnp

            x = jnp.asarray(self.held.synthetic * 2.0 - 1.0)
            refined = (np.asarray(self.validate(state.ema, x)) + 1.0) / 2.0
            refined = np.clip(refined, 0.0, 1.0).astype(np.float32)
            # The kinds other than the ResNet change the look (a camera model): their retention
            # classifiers also train on photometric variants, so blur or noise is not read as a
            # class change. The ResNet's scores stay those of synthetic-only classifiers.
            photometric = self.config.refiner != "resnet"
            record.update(
                validation.score(
                    self.held.real,
                    self.held.synthetic,
                    refined,
                    self.held.labels,
                    self.config.seed,
                    photometric=photometric,
                )
            )
            if record["retention"] is not None:
                self._judge_retention(record, phase, photometric)
        if self.judge is not None and self.judged_raw is not None:
            assert self.judged_source is not None
            refined_train = self._refine_in_chunks(state.ema, self.judged_source)
            record["downstream"] = self.judge.record(refined_train, self.judged_raw)
        camera = fitted_camera(state.ema)
        if camera is not None:
            from ..refiners.acquisition import summary_line

            record["camera"] = camera
            self.emit(Note("train", "info", f"step {step} camera: {summary_line(camera)}", step))
        return record

    def _judge_retention(self, record: dict, phase: str, photometric: bool) -> None:
        """The unrefined held-out images' own retention (computed once per run): when the
        classifier cannot read them (validation.readable), the checkpoint's retention is kept
        as `retention_unread` and not judged; else, for a run with no checkpoint scored before
        its adversarial phase (a camera model's), it is what "labels at risk" compares with."""
        if self._unrefined_retention is None:
            self._unrefined_retention = validation.retention(
                self.held.synthetic,
                self.held.synthetic,
                self.held.labels,
                self.config.seed,
                photometric,
            )
        unrefined = self._unrefined_retention
        assert unrefined is not None and self.held.labels is not None
        classes = len(np.unique(self.held.labels))
        if not validation.readable(unrefined, classes):
            record["retention_unread"], record["retention"] = record["retention"], None
            record["retention_unrefined"] = unrefined
            if not self._said_unreadable:
                self._said_unreadable = True
                self.emit(
                    Note(
                        "train",
                        "info",
                        f"label retention not judged: its classifier, trained on the synthetic "
                        f"images, recognises {unrefined:.0%} of the unrefined held-out ones "
                        f"({classes} classes); checkpoints are chosen without it",
                        record["step"],
                    )
                )
            return
        scored_before = any(
            r.get("phase") != "adversarial" and r.get("retention") is not None for r in self.records
        )
        if phase == "adversarial" and not scored_before:
            record["retention_unrefined"] = unrefined

    def after_save(self, record: dict, manager) -> None:
        """Record the scores, choose the best, prune to --keep (sparing the best), page."""
        self.records = [r for r in self.records if r["step"] != record["step"]] + [record]
        if not self.primary:
            return
        self._write_scores()
        best = selection.write_best(self.run, self.records)
        from . import checkpoint

        checkpoint.prune(manager, self.config.keep, protect={best.step})
        details = {**record, "best": best.step, "best_reason": best.reason}
        self.emit(
            Saved("train", "scores", record["step"], self.run / selection.SCORES_FILE, details)
        )
        self.write_page()

    def write_page(self) -> None:
        if self.primary:
            html = watch_page.render(self.run, self.records, self.latest_sample)
            atomic_write(self.run / "index.html", html.encode())

    def _refine_in_chunks(self, params, images: np.ndarray) -> np.ndarray:
        """Refine stored-dtype images in fixed-size chunks (one compiled shape); float [0, 1]
        at the downstream classifier's size."""
        import jax.numpy as jnp

        from ..downstream import classifier as downstream_classifier

        assert self.refine_chunk is not None
        out = []
        for part in _chunks(images):
            padded = np.zeros((DOWNSTREAM_CHUNK, *images.shape[1:]), np.float32)
            padded[: len(part)] = pixels.to_unit_float(part)
            refined = np.asarray(self.refine_chunk(params, jnp.asarray(padded * 2.0 - 1.0)))
            unit = np.clip((refined[: len(part)] + 1.0) / 2.0, 0.0, 1.0)
            out.append(downstream_classifier.prepare(unit))
        return np.concatenate(out).astype(np.float32)

    def _codes_at(self, step: int) -> list[str]:
        last = [codes for s, codes in self.monitor.history if s <= step]
        return last[-1] if last else []

    def _write_scores(self) -> None:
        text = "".join(json.dumps(r) + "\n" for r in self.records)
        atomic_write(self.run / selection.SCORES_FILE, text.encode())


def fitted_camera(params) -> dict | None:
    """The camera model's fitted parameters in numbers (refiners.acquisition.describe), or None
    for a refiner without one."""
    from flax import nnx

    from ..refiners import camera_params
    from ..refiners.acquisition import describe

    pure = nnx.to_pure_dict(params) if not isinstance(params, dict) else params
    camera = camera_params(pure)
    return None if camera is None else describe(camera)


def _chunks(images: np.ndarray):
    for start in range(0, len(images), DOWNSTREAM_CHUNK):
        yield images[start : start + DOWNSTREAM_CHUNK]
