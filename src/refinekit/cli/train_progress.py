"""How `refinekit train` shows a run: progress bar or plain lines, health warnings, the best step."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import AUTO_ADA_BELOW
from ..events import Event, Note, Progress, Saved, Stage, Started
from .common import interactive, log, progress_bar

if TYPE_CHECKING:
    from rich.progress import Progress as ProgressBar
    from rich.progress import TaskID


def report_best(run: Path) -> None:
    """Say which checkpoint refine/export will use; exit 1 when the run has no healthy one."""
    from ..training import selection

    records = selection.read_scores(run)
    if not records:
        return
    choice = selection.choose_best(records)
    if choice.step is not None:
        log(f"best checkpoint: step {choice.step}, {choice.reason}; refine --run uses it")
        log(downstream_line([r for r in records if r["step"] == choice.step][-1]))
        if choice.warning:
            log(f"[yellow]warning:[/] {choice.warning}")
    elif any(r.get("phase") == "adversarial" for r in records):
        raise selection.NoHealthyCheckpoint(
            f"{run}: no healthy checkpoint ({choice.reason}); see the warnings above and "
            f"{run / 'index.html'}"
        )


def downstream_line(record: dict) -> str:
    """What the chosen checkpoint does for a classifier trained on its images, in one line."""
    ds = record.get("downstream")
    if not ds:
        return (
            "downstream benefit not measured: sort some real images into folders named like "
            "the synthetic classes (2 or more per class) to score checkpoints by a classifier"
        )
    low, high = ds["vs_raw"]["interval"]
    return (
        f"downstream: a small CNN trained on these refined images scores {ds['accuracy']:.3f} "
        f"on {ds['test_images']} held-out real images, on raw synthetic "
        f"{ds['raw_synthetic']['accuracy']:.3f} (difference {ds['vs_raw']['difference']:+.3f}, "
        f"90% interval {low:+.3f} to {high:+.3f})"
    )


# The fields of a training log line, in order: (metrics.jsonl key, name on the line, digits).
# docs/training.md, "The training log", says what each means and its unit.
LOG_FIELDS = (
    ("refiner_adversarial", "R_adv", 3),
    ("self_regularisation", "reg", 4),
    ("mean_abs_change", "change", 4),
    ("disc_real", "D_real", 3),
    ("disc_refined", "D_refined", 3),
    ("disc_history", "D_history", 3),
    ("label_accuracy", "label_acc", 3),
    ("augment_p", "ada_p", 3),
    ("ada_signal", "ada_rt", 2),
)


def log_fields(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(name, value) of a metrics record's log line. Only what the phase computes: the
    adversarial loss only in the adversarial phase, the discriminator's losses only once it
    trains, the ADA fields only while ADA augments. `reg` is left out where it is the same
    number as `change` (psi identity and l1 content: both are mean |R(x) - x|)."""
    phase = record.get("phase")
    shown = []
    for key, name, digits in LOG_FIELDS:
        value = record.get(key)
        if value is None:
            continue
        if key == "refiner_adversarial" and phase != "adversarial":
            continue
        if key.startswith("disc_") and phase == "pretrain_refiner":
            continue
        if key == "self_regularisation" and _same(value, record.get("mean_abs_change")):
            continue
        if key in ("augment_p", "ada_signal") and not record.get("augment_p"):
            continue
        shown.append((name, f"{value:.{digits}f}"))
    return shown


def _same(a: float, b: float | None) -> bool:
    return b is not None and abs(a - b) <= 1e-6 * max(1.0, abs(a))


class ProgressView:
    """Renders training events (refinekit.events): a rich progress bar on a terminal, plain
    lines otherwise."""

    def __init__(self) -> None:
        self.progress: ProgressBar | None = None
        self.task: TaskID | None = None
        self.started = time.perf_counter()

    def __call__(self, event: Event) -> None:
        match event:
            case Started():
                self._start(event)
            case Stage(name=name, done=first, total=end):
                log(f"phase {name}: steps {first}..{end}")
            case Progress(stage="classifier"):
                if not self.progress:
                    loss = event.values["loss"]
                    log(f"classifier step {event.done}/{event.total}: loss {loss:.4f}")
            case Progress():
                self._log(event.values, event.total)
            case Saved(what="checkpoint"):
                if not self.progress:
                    log(f"checkpoint saved at step {event.step}")
            case Saved(what="scores"):
                self._scores(event.details)
            case Note(level="warning"):
                log(f"[yellow]warning:[/] {event.text}")
            case Note(level="health"):
                log(f"[bold yellow]health warning[/] at step {event.step}: {event.text}")
            case Note():
                log(event.text)

    def _scores(self, scores: Mapping[str, Any]) -> None:
        parts = []
        if scores.get("distance") is not None:
            parts.append(f"distance {scores['distance']:.4g}")
        if scores.get("retention") is not None:
            parts.append(f"retention {scores['retention']:.3f}")
        if scores.get("downstream"):
            ds = scores["downstream"]
            parts.append(
                f"downstream {ds['accuracy']:.3f} (raw synthetic {ds['raw_synthetic']['accuracy']:.3f})"
            )
        if not parts:
            return
        log(
            f"step {scores['step']} scores: {', '.join(parts)}"
            f"{'' if scores.get('healthy') else ' (unhealthy)'}; best so far: "
            f"{scores['best'] if scores['best'] is not None else 'none'}"
        )

    def _start(self, started: Started) -> None:
        event = started.details
        g = event["geometry"]
        h, w = event["size"]
        d = event["data"]
        resumed = (
            f", resuming from step {event['resumed_from']}"
            if event["resumed_from"] is not None
            else ""
        )
        log(
            f"training {event['run']}: {d['synthetic']['images']} synthetic, {d['real']['images']} real images at "
            f"{h}x{w}x{event['channels']} ({d['bit_depth']}-bit){resumed}"
        )
        log(
            f"discriminator: {g['grid'][0]}x{g['grid'][1]} patch grid, each patch sees {g['receptive_field']}x"
            f"{g['receptive_field']} pixels (stride {g['stride']}); history buffer {event['history_size']} images; "
            f"devices: {', '.join(event['devices'])}"
        )
        for reason in event.get("labels", []):
            log(reason)
        if event["skipped"]:
            first = "; ".join(event["skipped"][:3])
            log(f"[yellow]skipped {len(event['skipped'])} undecodable file(s)[/]: {first}")
        small = d["real"]["images"]
        if event.get("augment") == "ada" and small < AUTO_ADA_BELOW:
            log(
                f"discriminator augmentation: ada (only {small} real images; --augment auto "
                f"uses it below {AUTO_ADA_BELOW}, --augment none turns it off)"
            )
        if event.get("augment", "none") == "none" and small < AUTO_ADA_BELOW:
            log(
                f"[yellow]note:[/] only {small} real images: the discriminator will memorise them; consider --augment ada "
                "(with 50 real images it lowered KID about 5x in docs/few-real-images.md)"
            )
        elif event.get("augment", "none") == "none" and small < 500:
            log(
                f"[yellow]note:[/] only {small} real images: if disc_acc_real stays near 1 in metrics.jsonl, the "
                "discriminator is memorising them; try --augment ada"
            )
        if interactive():
            self.progress = progress_bar("[bold]{task.fields[phase]}", "rate", "info")
            self.task = self.progress.add_task(
                "train",
                total=started.total,
                completed=started.done,
                phase="start",
                rate="",
                info="",
            )
            self.progress.start()

    def _log(self, event: Mapping[str, Any], total: int | None = None) -> None:
        info = " ".join(f"{name} {value}" for name, value in log_fields(event))
        if event.get("health"):
            info += f" [bold red]health {','.join(event['health'])}[/]"
        rate = f"{event['images_per_second']:.0f} img/s"
        if self.progress is not None:
            assert self.task is not None  # added with the progress bar in _start
            self.progress.update(
                self.task, completed=event["step"], phase=event["phase"], rate=rate, info=info
            )
        else:
            of = f"/{total}" if total else ""
            log(f"step {event['step']}{of} {event['phase']}: {info} {rate}")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
