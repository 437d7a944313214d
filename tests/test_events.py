"""The one progress protocol (refinekit.events): what train, refine_folder and gap_report send
to `on_event`, and how the CLI renders it (the same lines as before the protocol)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import write_images
from refinekit import events, train
from refinekit.events import Finished, Note, Progress, Saved, Stage, Started
from refinekit.gap import gap_report
from refinekit.refine import refine_folder
from refinekit.training import checkpoint

ALL = (
    Started("train", 10, 2, {"run": "r"}),
    Stage("gap-report", "read images", 2),
    Progress("refine", None, 1, 3, {"refined": 1}),
    Note("train", "warning", "careful", 5),
    Saved("train", "checkpoint", 10, Path("run/checkpoints/10")),
    Finished("refine", {"refined": 3}),
)


@pytest.mark.parametrize("event", ALL, ids=lambda e: type(e).__name__)
def test_events_are_frozen_and_name_their_job(event):
    assert event.job in ("train", "refine", "gap-report")
    field = dataclasses.fields(event)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(event, field, "other")
    assert dataclasses.replace(event) == event  # value semantics: equal copies


def test_stages_adapter_emits_a_stage_then_running_counts():
    seen: list[events.Event] = []
    advance = events.stages(seen.append, "gap-report")("features", 5)
    advance(2)
    advance()
    advance(2)
    assert seen == [
        Stage("gap-report", "features", 5),
        Progress("gap-report", "features", 2, 5),
        Progress("gap-report", "features", 3, 5),
        Progress("gap-report", "features", 5, 5),
    ]
    quiet = events.stages(None, "gap-report")("features", 5)
    quiet(3)  # nothing to build without a listener
    assert events.stages(events.ignore, "train") is events.stages(None, "train")


def _labelled(root: Path) -> tuple[Path, Path]:
    """16x16 gray sets in class subfolders a, b: the run gets its classifier phase too."""
    for name, smooth, seed in (("syn", True, 0), ("real", False, 1)):
        for i, cls in enumerate(("a", "b")):
            write_images(root / name / cls, 10, (16, 16), seed * 10 + i, smooth=smooth)
    return root / "syn", root / "real"


def _tiny(syn, real, run, steps) -> dict:
    return {
        "synthetic": str(syn),
        "real": str(real),
        "out": str(run),
        "refiner": "resnet",
        "steps": steps,
        "preset": "tiny",
        "batch_size": 4,
        "log_every": 5,
        "sample_every": 10,
        "checkpoint_every": 10,
        "pretrain_refiner_steps": 6,
        "pretrain_disc_steps": 4,
        "classifier_steps": 8,
    }


@pytest.mark.slow
def test_train_sends_started_stages_progress_saved_then_finished(tmp_path):
    syn, real = _labelled(tmp_path)
    run = tmp_path / "run"
    seen: list[events.Event] = []
    result = train(_tiny(syn, real, run, 4), on_event=seen.append)

    assert all(e.job == "train" for e in seen)
    started, finished = seen[0], seen[-1]
    assert isinstance(started, Started) and (started.total, started.done) == (14, 0)
    assert started.details["run"] == str(run) and started.details["resumed_from"] is None
    assert isinstance(finished, Finished) and finished.details == {"step": 14, "run": str(run)}
    assert result.step == 14
    assert not any(isinstance(e, (Started, Finished)) for e in seen[1:-1])

    stages = [e for e in seen if isinstance(e, Stage)]
    assert [(s.name, s.done, s.total) for s in stages] == [
        ("classifier", 0, 8),
        ("classifier", 0, 32),  # 8 steps leave C under 97% on this data: trained again, 4x
        ("pretrain_refiner", 0, 6),
        ("pretrain_disc", 6, 10),
        ("adversarial", 10, 14),
    ]
    # Every Progress belongs to the stage announced last, counts up within it, never past it.
    stage, last = None, -1
    for event in seen:
        if isinstance(event, Stage):
            stage, last = event, event.done
        elif isinstance(event, Progress):
            assert stage is not None and event.stage == stage.name
            assert last < event.done <= event.total and event.done <= stage.total
            last = event.done
    classifier = [e for e in seen if isinstance(e, Progress) and e.stage == "classifier"]
    assert [e.done for e in classifier][-1] == 32 and {e.total for e in classifier} == {8, 32}
    assert all(np.isfinite(e.values["loss"]) for e in classifier)
    trained = [e for e in seen if isinstance(e, Progress) and e.stage != "classifier"]
    assert all(e.total == 14 for e in trained) and trained[-1].done == 14
    # A log interval's values are its metrics.jsonl record, number for number.
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [dict(e.values) for e in trained] == lines

    notes = [e for e in seen if isinstance(e, Note)]
    assert any(n.level == "info" and "label classifier trained (8 steps" in n.text for n in notes)
    saved = [e for e in seen if isinstance(e, Saved)]
    checkpoints = [e for e in saved if e.what == "checkpoint"]
    assert [e.step for e in checkpoints] == checkpoint.steps(run) == [10, 14]
    assert all(e.path is not None and e.path.is_dir() for e in checkpoints)
    samples = [e for e in saved if e.what == "sample"]
    assert [e.step for e in samples] == [0, 10, 14]
    assert all(e.path is not None and e.path.is_file() for e in samples)

    # Resuming: Started says how much is already done.
    again: list[events.Event] = []
    train(_tiny(syn, real, run, 6), on_event=again.append)
    first = again[0]
    assert isinstance(first, Started) and (first.total, first.done) == (16, 14)
    assert first.details["resumed_from"] == 14
    assert [(s.name, s.done, s.total) for s in again if isinstance(s, Stage)] == [
        ("adversarial", 14, 16)
    ]  # the classifier phase is in the checkpoint already
    assert isinstance(again[-1], Finished) and again[-1].details["step"] == 16


class Identity:
    channels, batch_size, train_size = 1, 2, (16, 16)
    model_id = {"run": "/runs/identity", "step": 1}

    def __call__(self, images):
        return images


def test_refine_folder_sends_one_progress_per_file(tmp_path):
    source = write_images(tmp_path / "in", 5, (16, 16), 0, smooth=True)
    (source / "labels.txt").write_text("a\n")
    (source / "broken.png").write_bytes(b"not a png")
    seen: list[events.Event] = []
    summary = refine_folder(source, tmp_path / "out", Identity(), workers=1, on_event=seen.append)

    assert all(e.job == "refine" for e in seen)
    started, finished = seen[0], seen[-1]
    assert isinstance(started, Started) and (started.total, started.done) == (7, 0)
    assert dict(started.details) == {"images": 6, "others": 1, "skipped": 0}
    progress = seen[1:-1]
    assert all(isinstance(e, Progress) and e.stage is None for e in progress)
    assert [e.done for e in progress] == list(range(1, 8))
    assert all(e.total == 7 for e in progress)
    records = [e.values["record"] for e in progress]
    assert sorted(r.input for r in records) == sorted(
        p.relative_to(source).as_posix() for p in source.iterdir()
    )
    last = progress[-1].values
    assert (last["refined"], last["copied"], last["failed"], last["skipped"]) == (5, 1, 1, 0)
    assert last["images_total"] == 6 and last["others_total"] == 1 and last["images_per_s"] > 0
    assert isinstance(finished, Finished) and finished.details == summary.to_dict()
    assert (summary.refined, summary.copied, summary.failed) == (5, 1, 1)

    # A rerun: the completed files are skipped, not counted in this run's total.
    again: list[events.Event] = []
    refine_folder(source, tmp_path / "out", Identity(), workers=1, on_event=again.append)
    first = again[0]
    assert isinstance(first, Started) and first.total == 1 and first.details["skipped"] == 6
    assert [e.done for e in again if isinstance(e, Progress)] == [1]  # the broken file again


@pytest.mark.slow
def test_gap_report_stages_reach_their_totals(tmp_path):
    for name, smooth, seed, count in (("real", False, 1, 10), ("syn", True, 2, 6)):
        for i, cls in enumerate(("a", "b")):
            write_images(tmp_path / name / cls, count, (16, 16, 3), seed * 10 + i, smooth=smooth)
    shutil.copytree(tmp_path / "syn", tmp_path / "refined")  # paired by name with syn
    seen: list[events.Event] = []
    report = gap_report(
        tmp_path / "real",
        tmp_path / "syn",
        refined=tmp_path / "refined",
        replicates=20,
        on_event=seen.append,
    )

    assert all(e.job == "gap-report" for e in seen)
    started, finished = seen[0], seen[-1]
    assert isinstance(started, Started) and started.total is None
    assert started.details["refined"] == str(tmp_path / "refined")
    assert isinstance(finished, Finished) and finished.details["verdict"] == report.verdict
    assert finished.details["outcome"] == report.document["verdict"]["outcome"]
    stages = [e for e in seen if isinstance(e, Stage)]
    assert [s.name for s in stages] == [
        "read images",
        "features and image statistics",
        "KID, Frechet, density/coverage",
        "domain classifier",
        "train on X, test on real",
        "label retention",
        "gap split: classifiers on real",
    ]
    for stage in stages:
        counts = [e for e in seen if isinstance(e, Progress) and e.stage == stage.name]
        assert counts and all(e.total == stage.total for e in counts), stage
        done = [e.done for e in counts]
        assert done == sorted(done) and done[-1] == stage.total, stage


def _lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_train_view_prints_the_lines_it_always_printed(capsys):
    from refinekit.cli.train_progress import ProgressView

    data = {
        "synthetic": {"images": 20},
        "real": {"images": 40},
        "bit_depth": 8,
    }
    details = {
        "run": "runs/x",
        "resumed_from": 4,
        "size": (16, 16),
        "channels": 1,
        "geometry": {"grid": (4, 4), "receptive_field": 9, "stride": 4},
        "data": data,
        "skipped": ["a.png: broken"],
        "devices": ["cpu"],
        "history_size": 32,
        "augment": "none",
        "labels": ["label loss on: 2 class subfolders"],
    }
    record = {
        "step": 5,
        "phase": "pretrain_refiner",
        "self_regularisation": 0.01234,
        "images_per_second": 123.4,
        "health": [],
    }
    scores = {"step": 10, "distance": 0.5, "retention": 0.9, "healthy": True, "best": 10}
    view = ProgressView()
    for event in (
        Started("train", 14, 4, details),
        Stage("train", "classifier", 8),
        Progress("train", "classifier", 8, 8, {"loss": 0.25}),
        Note("train", "info", "label classifier trained (8 steps, 2 classes): 50.0% ...; frozen"),
        Stage("train", "pretrain_refiner", 6, 0),
        Progress("train", "pretrain_refiner", 5, 14, record),
        Note("train", "warning", "the real data changed since this run started"),
        Note("train", "health", "drift: far above", 5, {"code": "drift"}),
        Saved("train", "sample", 10, Path("runs/x/samples/step_0000010.png")),
        Saved("train", "checkpoint", 10, Path("runs/x/checkpoints/10")),
        Saved("train", "scores", 10, Path("runs/x/scores.jsonl"), scores),
        Saved("train", "scores", 10, Path("runs/x/scores.jsonl"), {**scores, "distance": None}),
        Finished("train", {"step": 14, "run": "runs/x"}),
    ):
        view(event)
    view.close()
    assert _lines(capsys) == [
        "training runs/x: 20 synthetic, 40 real images at 16x16x1 (8-bit), resuming from step 4",
        "discriminator: 4x4 patch grid, each patch sees 9x9 pixels (stride 4); history buffer 32 "
        "images; devices: cpu",
        "label loss on: 2 class subfolders",
        "skipped 1 undecodable file(s): a.png: broken",
        "note: only 40 real images: the discriminator will memorise them; consider --augment ada "
        "(with 50 real images it lowered KID about 5x in docs/few-real-images.md)",
        "phase classifier: steps 0..8",
        "classifier step 8/8: loss 0.2500",
        "label classifier trained (8 steps, 2 classes): 50.0% ...; frozen",
        "phase pretrain_refiner: steps 0..6",
        "step 5/14 pretrain_refiner: reg 0.0123 123 img/s",
        "warning: the real data changed since this run started",
        "health warning at step 5: drift: far above",
        "checkpoint saved at step 10",
        "step 10 scores: distance 0.5, retention 0.900; best so far: 10",
        # a tiny labelled split has no distance: what was scored is still printed
        "step 10 scores: retention 0.900; best so far: 10",
    ]


def test_refine_and_gap_reporters_print_the_lines_they_always_printed(capsys):
    from refinekit.cli.gap import _LogStages
    from refinekit.cli.refine import _LogReporter
    from refinekit.refine.manifest import Record

    reporter = _LogReporter()
    reporter.every_s = 0.0  # a progress line at every event
    failed = Record(input="b.png", output=None, action="failed", error="cannot decode")
    base = {"images_total": 2, "others_total": 1, "copied": 0, "skipped": 0, "record": None}
    reporter(Started("refine", 3, 0, {"images": 2, "others": 1, "skipped": 0}))
    reporter(
        Progress("refine", None, 1, 3, {**base, "refined": 1, "failed": 0, "images_per_s": 2.5})
    )
    reporter(
        Progress(
            "refine",
            None,
            2,
            3,
            {**base, "refined": 1, "failed": 1, "images_per_s": 2.0, "record": failed},
        )
    )
    reporter(Finished("refine", {}))
    stages = _LogStages()
    stages(Started("gap-report", None))
    stages(Stage("gap-report", "read images", 2))
    stages(Progress("gap-report", "read images", 1, 2))
    assert _lines(capsys) == [
        "  0/2 images, 0/1 other files, 0.0 images/s",
        "  1/2 images, 0/1 other files, 2.5 images/s",
        "failed: b.png: cannot decode",
        "  2/2 images, 0/1 other files, 2.0 images/s",
        "gap-report: read images",
    ]
