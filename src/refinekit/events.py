"""The one progress protocol of the long jobs: train, refine and gap-report (docs/api.md).

Each job takes `on_event`, a callable that receives these frozen dataclasses in order:

    Started  the job begins: `total` units of work (None: not known up front), `done` already
    Stage    a stage (training phase, gap-report stage) starts, running from `done` to `total`
    Progress work advanced: `done` of `total` in `stage`, the numbers of the moment in `values`
    Note     a message for people: info, a warning, a health warning
    Saved    a file of the run was written (checkpoint, sample grid, scores)
    Finished the job ended; `details` says what it did

Every event names its `job`. Events are emitted in the job's own thread, as the work happens:
a slow `on_event` slows the job. `stages(on_event, job)` gives internals the cheap
`start(name, total) -> advance(n)` form, which emits Stage and Progress events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias

Job = Literal["train", "refine", "gap-report"]


def _empty() -> Mapping[str, Any]:
    return {}


@dataclass(frozen=True, slots=True)
class Started:
    """The job begins. train: steps (done = the resumed step); refine: files of this run."""

    job: Job
    total: int | None
    done: int = 0
    details: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Stage:
    """A stage starts; it counts from `done` to `total` (training phases count global steps)."""

    job: Job
    name: str
    total: int
    done: int = 0


@dataclass(frozen=True, slots=True)
class Progress:
    """Work advanced: `done` of `total` units of `stage` (None: the job has a single stage).

    train: one per log interval, `values` the metrics.jsonl record, or the classifier's loss;
    refine: one per finished file, `values` its counts, rate and manifest `record`."""

    job: Job
    stage: str | None
    done: int
    total: int
    values: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Note:
    """A message, as the CLI prints it (it may hold rich markup such as [yellow])."""

    job: Job
    level: Literal["info", "warning", "health"]
    text: str
    step: int | None = None
    details: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Saved:
    """A file or folder of the run was written, at training step `step`."""

    job: Job
    what: Literal["checkpoint", "sample", "scores"]
    step: int | None
    path: Path | None
    details: Mapping[str, Any] = field(default_factory=_empty)


@dataclass(frozen=True, slots=True)
class Finished:
    """The job ended without an error (errors are raised, not sent)."""

    job: Job
    details: Mapping[str, Any] = field(default_factory=_empty)


Event: TypeAlias = Started | Stage | Progress | Note | Saved | Finished
OnEvent: TypeAlias = Callable[[Event], None]


class Advance(Protocol):
    """A stage's progress callback: advance(n) moves it on by n units, advance() by one."""

    def __call__(self, n: int = 1) -> None: ...


StartStage: TypeAlias = Callable[[str, int], Advance]  # start(name, total) -> advance(n)


def ignore(event: Event) -> None:
    """The `on_event` of a caller that does not listen."""


def stages(on_event: OnEvent | None, job: Job) -> StartStage:
    """start(name, total) emits Stage(job, name, total) and returns advance(n), which emits
    Progress with the stage's running count. Without a listener nothing is built at all."""
    if on_event is None or on_event is ignore:
        return _no_stage

    def start(name: str, total: int) -> Advance:
        on_event(Stage(job, name, total))
        done = 0

        def advance(n: int = 1) -> None:
            nonlocal done
            done += n
            on_event(Progress(job, name, done, total))

        return advance

    return start


def _no_stage(name: str, total: int) -> Advance:
    return _no_advance


def _no_advance(n: int = 1) -> None:
    pass
