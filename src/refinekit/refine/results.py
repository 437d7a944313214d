"""What a refine run reports at the end (its progress goes to `on_event`, refinekit.events)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class RefineSummary:
    """What a run did. `failures` holds "relative/path: reason" per failed output. Counts are
    of outputs: with `variants` K > 1 an image has K."""

    output: Path
    manifest: Path
    refined: int
    copied: int
    skipped: int  # complete from an earlier run (resumed)
    failed: int
    not_copied: int  # other files left out (--no-copy-other) and an earlier run's own files
    cleaned: int  # temporary files of a killed run removed
    elapsed_s: float
    images_per_s: float
    stopped: bool = False  # fail_fast stopped the run at its first failure
    interrupted: bool = False  # `should_stop` stopped the run (files in flight were finished)
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    model: dict = field(default_factory=dict)
    variants: int = 1
    seed: int | None = None  # for a refiner with per-image draws

    def to_dict(self) -> dict:
        data = asdict(self)
        data["output"], data["manifest"] = str(self.output), str(self.manifest)
        data["failures"], data["notes"] = list(self.failures), list(self.notes)
        return data
