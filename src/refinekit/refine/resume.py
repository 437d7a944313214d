"""Resuming: which files an earlier run into OUT already completed, and what it left behind.

An output is complete when its manifest record still matches both the input and the output on
disk (sizes, and modification times or, for a touched file, content hashes); it is skipped
unless it was refined with another model or another seed, which is refused unless `overwrite`.
With variants (variants.py) each of an input's outputs is complete or not on its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..io.atomic import temp_target
from ..io.files import file_sha256, walk
from .manifest import Record, read_manifests_and_outputs
from .plan import Outputs, RefinePlan
from .shard import shard_of


@dataclass(frozen=True)
class Work:
    """What is left to do: images to refine and files to copy (relative paths), the outputs
    left of each (`todo`: (variant, output path) pairs), and how many outputs an earlier run
    completed."""

    images: list[str]
    others: list[str]
    skipped: int
    todo: dict[str, Outputs] = field(default_factory=dict)

    def outputs(self, relative: str) -> Outputs:
        return self.todo.get(relative, ((None, relative),))

    def count(self, relatives: list[str]) -> int:
        """How many outputs `relatives` have left."""
        return sum(len(self.outputs(relative)) for relative in relatives)


def same_model(a: dict | None, b: dict | None) -> bool:
    """Two model ids name the same weights (an export by its hash, a run by path and step)."""
    if not a or not b:
        return False
    if a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"]
    return a == b


def describe_model(model: dict | None) -> str:
    if not model:
        return "an unknown model"
    if "run" in model:
        return f"run {model['run']} step {model.get('step')}"
    if "export" in model:
        return f"export {model['export']} (sha256 {str(model.get('sha256', ''))[:12]})"
    return str(model)


def complete_record(records: list[Record] | None, source: Path, target: Path) -> Record | None:
    """The earlier record that still describes `target` made from `source` as they are now."""
    if not records:
        return None
    try:
        src, dst = source.stat(), target.stat()
    except OSError:
        return None
    hashes: dict[Path, str] = {}

    def matches(path: Path, mtime_ns: int, recorded_mtime: int | None, sha: str | None) -> bool:
        if recorded_mtime == mtime_ns:
            return True
        if not sha:  # a touched file: trust its content hash, not its timestamp
            return False
        if path not in hashes:
            hashes[path] = file_sha256(path)
        return hashes[path] == sha

    for record in reversed(records):
        if record.action not in ("refined", "copied"):
            continue
        if record.input_size != src.st_size or record.output_size != dst.st_size:
            continue
        if matches(source, src.st_mtime_ns, record.input_mtime_ns, record.input_sha256) and matches(
            target, dst.st_mtime_ns, record.output_mtime_ns, record.output_sha256
        ):
            return record
    return None


def remaining_work(
    plan: RefinePlan,
    model: dict,
    *,
    overwrite: bool,
    copy_other: bool,
    seed: int | None = None,
) -> Work:
    """The outputs of `plan` not yet complete in OUT; raises UsageError when OUT holds images
    refined with another model (or, `seed` given for a refiner with per-image draws, another
    seed), or a file at an output's name that no manifest records (the user's, see
    `check_unrecorded`), unless `overwrite`, which redoes and replaces everything.
    Reads and checks only: call it before anything is written."""
    output = plan.output
    previous, recorded = read_manifests_and_outputs(output)  # validates them, also with overwrite
    if overwrite:
        previous = {}
    else:
        check_unrecorded(plan, recorded, copy_other=copy_other)
    images: list[str] = []
    others: list[str] = []
    conflicts: list[tuple[str, dict | None, int | None]] = []  # (output, model, seed)
    todo: dict[str, Outputs] = {}
    skipped = 0

    def left(relative: str, outputs: Outputs, action: str) -> Outputs:
        nonlocal skipped
        pending = []
        for variant, out in outputs:
            mine = [r for r in previous.get(out, ()) if r.input == relative]
            done = complete_record(mine, plan.root / relative, output / out)
            if done is None or done.action != action:
                pending.append((variant, out))
            elif action == "refined" and not same_model(done.model, model):
                conflicts.append((out, done.model, None))
            elif action == "refined" and seed is not None and (done.seed or 0) != seed:
                conflicts.append((out, model, done.seed or 0))
            else:
                skipped += 1
        return tuple(pending)

    for relative in plan.images:
        pending = left(relative, plan.image_outputs(relative), "refined")
        if pending:
            images.append(relative)
            todo[relative] = pending
    for relative in plan.others if copy_other else ():
        pending = left(relative, plan.other_outputs(relative), "copied")
        if pending:
            others.append(relative)
            todo[relative] = pending
    if conflicts:
        out, old, old_seed = conflicts[0]
        if old_seed is not None:
            raise UsageError(
                f"OUT {output}: {len(conflicts)} image(s) there were refined with --seed "
                f"{old_seed} (e.g. {out}), not --seed {seed}; pass --overwrite to refine them "
                f"again with this seed, --seed {old_seed} to resume, or choose another OUT folder"
            )
        step = f", --step {old['step']} to resume with it" if old and "step" in old else ""
        raise UsageError(
            f"OUT {output}: {len(conflicts)} image(s) there were refined with "
            f"{describe_model(old)} (e.g. {out}), not with {describe_model(model)}; "
            f"pass --overwrite to refine them again with this model{step}, "
            "or choose another OUT folder"
        )
    return Work(images, others, skipped, todo)


def check_unrecorded(plan: RefinePlan, recorded: set[str], *, copy_other: bool) -> None:
    """OUT is refinekit's: a file at the name of one of this run's outputs that no manifest in
    OUT records (the user's notes, an earlier tool's output) is never replaced without
    `--overwrite`. Raises UsageError naming the first such file (and how many there are)."""
    names = plan.output_names(copy_other)
    found = sorted(r for r in names if r not in recorded and os.path.lexists(plan.output / r))
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise UsageError(
            f"OUT {plan.output}: {found[0]}{more} already exists there and was not written by "
            "refinekit (no manifest in OUT records it); refine never replaces such a file "
            "unasked: move it away, choose another OUT folder, or pass --overwrite to replace it"
        )


def remove_temp_files(plan: RefinePlan) -> int:
    """Delete temporary outputs a killed run left in OUT (only this shard's, when sharded)."""
    removed = 0
    if not plan.output.is_dir():
        return 0
    mine = plan.output_names() if plan.variants > 1 else set()
    for dirpath, dirnames, filenames in walk(plan.output):
        dirnames.sort()
        for name in filenames:
            target = temp_target(name)
            if target is None:
                continue
            folder = Path(dirpath).relative_to(plan.output)
            relative = (folder / target).as_posix()
            if plan.shard is not None and not _this_shard(plan, relative, mine):
                continue  # another shard's, maybe being written right now
            try:
                Path(dirpath, name).unlink(missing_ok=True)
            except OSError:
                continue  # a read-only OUT: the manifest cannot be opened either, and says so
            removed += 1
    return removed


def _this_shard(plan: RefinePlan, relative: str, mine: set[str]) -> bool:
    """Whether output `relative` is this shard's: its path's shard, or with variants (whose
    names are not their inputs') one of this shard's outputs."""
    assert plan.shard is not None
    if plan.variants > 1:
        return relative in mine
    return shard_of(relative, plan.shard[1]) == plan.shard[0]
