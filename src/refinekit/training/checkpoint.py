"""Checkpoints of a run: the only module that imports orbax.

Layout: RUN/checkpoints/<step>/{state, config, refinekit-sha256.json}. Each checkpoint carries
the full config as JSON, so it can be restored with no other input. Saves are atomic (orbax
writes to a temporary folder and renames it), so a kill during a save leaves the previous one
intact. After a save, `refinekit-sha256.json` records the SHA-256 of every file of the
checkpoint, and restoring checks them first: orbax does not notice changed bytes in its data
files (it restores different numbers), so without this a damaged checkpoint could resume
training silently. A checkpoint without that file (an older one, or a kill between the save
and the checksums) is restored unchecked.
"""

from __future__ import annotations

import contextlib
import gc
import json
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, UsageError
from .orbax_noise import orbax_quiet, quiet_orbax_once, stderr_held

DIGEST_NAME = "refinekit-sha256.json"


def _ocp():
    import orbax.checkpoint as ocp

    quiet_orbax_once()
    return ocp


def checkpoint_dir(run: Path) -> Path:
    return Path(run).absolute() / "checkpoints"


def open_manager(run: Path, keep: int | None = None, read_only: bool = False):
    ocp = _ocp()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep,
        create=not read_only,
        read_only=read_only,
        enable_async_checkpointing=False,  # the state is small; a finished save is a simple promise
        cleanup_tmp_directories=not read_only,
    )
    return ocp.CheckpointManager(
        checkpoint_dir(run), options=options, item_names=("state", "config")
    )


def save(manager, step: int, state: Any, config: dict) -> None:
    """Save `state` and `config` as checkpoint `step`, then record its files' checksums.

    Raises CheckpointError when it cannot be written (full disk, permissions); the earlier
    checkpoints are untouched.
    """
    import jax

    ocp = _ocp()
    folder = Path(manager.directory) / str(step)
    try:
        with stderr_held(), orbax_quiet():
            try:
                manager.save(
                    step,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config)
                    ),
                    force=True,
                )
                manager.wait_until_finished()
            except BaseException:
                _shut_down(manager)  # its threads' dying words land in the held stderr
                raise
        if jax.process_index() == 0:
            _write_digests(folder)
    except Exception as exc:  # noqa: BLE001 - orbax and tensorstore raise ValueError, OSError, ...
        first = (str(exc).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{folder}: cannot save the checkpoint ({type(exc).__name__}: {first}); the earlier "
            "checkpoints are kept; free some disk space (or fix the permissions) and run the same "
            "command again to resume"
        ) from exc


def _shut_down(manager) -> None:
    """Close a manager whose save failed, and give its worker threads a moment to finish."""
    import time

    try:
        manager.close()
    except Exception:  # noqa: BLE001 - it is already failing; the save's error is what we report
        pass
    gc.collect()
    time.sleep(0.3)


def _write_digests(folder: Path) -> None:
    from ..io.atomic import atomic_write
    from ..io.files import file_sha256

    files = {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != DIGEST_NAME
    }
    atomic_write(folder / DIGEST_NAME, json.dumps({"files": files}, indent=0).encode())


def verify(run: Path, step: int) -> None:
    """Check checkpoint `step`'s files against the checksums saved with it.

    Raises CheckpointError naming the first missing or changed file; does nothing for a
    checkpoint saved without checksums.
    """
    from ..io.files import file_sha256

    folder = checkpoint_dir(run) / str(step)
    digest_file = folder / DIGEST_NAME
    if not digest_file.is_file():
        return
    try:
        files = json.loads(digest_file.read_text())["files"]
        problem = None
        for relative, expected in files.items():
            path = folder / relative
            if not path.is_file():
                problem = f"{relative} is missing"
            elif file_sha256(path) != expected:
                problem = f"{relative} differs from what was saved"
            if problem:
                break
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        problem = f"its checksum file {DIGEST_NAME} is unreadable ({type(exc).__name__})"
    if problem:
        raise CheckpointError(f"checkpoint {folder} is damaged: {problem}; {_way_out(run, step)}")


def _way_out(run: Path, step: int) -> str:
    """What to do about a damaged checkpoint `step`: the earlier ones, if any remain."""
    try:
        others = [s for s in steps(run) if s != step]
    except Exception:  # noqa: BLE001 - listing is best effort in an error message
        others = []
    if not others:
        return "no other checkpoint remains; start a new run"
    return (
        f"the earlier checkpoints remain ({', '.join(map(str, others))}): pass --step "
        f"{others[-1]} to refine or export with one, or delete that folder to resume training "
        "from the one before it"
    )


@contextlib.contextmanager
def _restoring(manager):
    """Around an orbax restore: a failure is one CheckpointError from the caller, without the
    "Event loop is closed" tracebacks tensorstore's threads print while orbax unwinds (they
    land in the held stderr, and the manager is shut down before stderr is given back)."""
    with stderr_held(), orbax_quiet():
        try:
            yield
        except BaseException as exc:
            # The failed read coroutines live on in the traceback's frames; freed and collected
            # now, their "Exception ignored in <coroutine ...>" reports land in the held stderr
            # instead of after our one-line error.
            _release_frames(exc)
            _shut_down(manager)
            raise


def _release_frames(exc: BaseException) -> None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        traceback.clear_frames(exc.__traceback__)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]


def steps(run: Path) -> list[int]:
    """Complete checkpoints of a run, oldest first (empty if none)."""
    if not checkpoint_dir(run).is_dir():
        return []
    manager = open_manager(run, read_only=True)
    try:
        with orbax_quiet():  # a damaged metadata file is reported when that step is restored
            return sorted(manager.all_steps())
    finally:
        manager.close()


def pick_step(run: Path, step: int | None) -> int:
    available = steps(run)
    if not available:
        raise CheckpointError(
            f"{run}: no checkpoint found in {checkpoint_dir(run)} (train first, or check the path)"
        )
    if step is None:
        return available[-1]
    if step not in available:  # a step the user asked for: a bad flag (exit 2)
        raise UsageError(
            f"--step {step}: no such checkpoint in {run} (available: {', '.join(map(str, available))})"
        )
    return step


def load_config(run: Path, step: int) -> dict:
    verify(run, step)
    path = checkpoint_dir(run) / str(step) / "config" / "metadata"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        pass
    manager = open_manager(run, read_only=True)
    try:
        with _restoring(manager):
            return manager.restore(
                step, args=_ocp().args.Composite(config=_ocp().args.JsonRestore())
            )["config"]
    except Exception as exc:  # noqa: BLE001 - orbax raises many types for a damaged folder
        first = (str(exc).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{checkpoint_dir(run) / str(step)}: cannot read its config ({first}); "
            f"{_way_out(run, step)}"
        ) from exc
    finally:
        manager.close()


def restore(run: Path, step: int, target: Any) -> Any:
    """Restore the state saved at `step` into the structure, shapes and shardings of `target`."""
    import jax

    ocp = _ocp()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    return _restore_state(run, step, lambda _: ocp.args.StandardRestore(abstract))


def restore_field(run: Path, step: int, names: Sequence[str], target: Any) -> Any:
    """Restore one top-level field of the state saved at `step` (the first of `names` it holds)
    into the structure, shapes and shardings of `target`, and nothing else: a refiner builds no
    discriminator, optimiser state or buffer. With checksums (checked first) only that field is
    read (orbax's partial restore); without, the whole state is, reading being the only check."""
    import jax

    ocp = _ocp()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    sharding = jax.tree.leaves(abstract)[0].sharding
    chosen: list[str] = []

    def args(folder: Path):
        saved = ocp.StandardCheckpointHandler().metadata(folder / "state").tree
        chosen.extend(n for n in names if saved.get(n))  # a None field has no arrays
        if not chosen:
            raise KeyError(f"its state holds none of {', '.join(names)}")
        every = not (folder / DIGEST_NAME).is_file()
        like = lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=sharding)  # noqa: E731
        item = {k: jax.tree.map(like, v) for k, v in saved.items() if every} | {chosen[0]: abstract}
        restore_args = ocp.checkpoint_utils.construct_restore_args(item)
        return ocp.args.PyTreeRestore(item, restore_args, partial_restore=True)

    _check_parameter_names(run, step, names, target)
    return _restore_state(run, step, args)[chosen[0]]


def _names(tree: Any, prefix: str = "") -> set[str]:
    """The leaf paths ("a/b") of saved metadata or of a target: nested dicts, nnx States."""
    from flax import nnx

    if isinstance(tree, nnx.State):
        tree = nnx.to_pure_dict(tree)
    if isinstance(tree, dict):
        return set().union(*(_names(v, f"{prefix}{k}/") for k, v in tree.items()))
    return {prefix.rstrip("/")}


def _check_parameter_names(run: Path, step: int, names: Sequence[str], target: Any) -> None:
    """A clear error when the checkpoint's parameters are not the ones this refinekit builds
    (a model whose parameters were renamed since the run was trained), before orbax's own."""
    verify(run, step)
    folder = checkpoint_dir(run) / str(step)
    try:
        with orbax_quiet():
            saved = _ocp().StandardCheckpointHandler().metadata(folder / "state").tree
        name = next(n for n in names if saved.get(n))
        field = saved[name]
        want = _names(target)
    except Exception:  # noqa: BLE001 - the restore itself reports what it cannot read
        return
    have = {n.removesuffix("/value") for n in _names(field)}  # an nnx Variable's value
    if want - have:  # more in the checkpoint is fine: a partial restore reads what it needs
        listed = lambda names: ", ".join(sorted(names)[:4]) or "none"  # noqa: E731
        raise CheckpointError(
            f"{folder}: its saved {name} parameters are not this refinekit's (only in the "
            f"checkpoint: {listed(have - want)}; only here: {listed(want - have)}): it was "
            "trained by another version; train it again, or refine with that version"
        )


def _restore_state(run: Path, step: int, args: Callable[[Path], Any]) -> Any:
    """Checkpoint `step`'s state, restored with orbax's `args(folder)`; one CheckpointError."""
    verify(run, step)
    folder = checkpoint_dir(run) / str(step)
    manager = open_manager(run, read_only=True)
    try:
        with _restoring(manager):
            restored = manager.restore(step, args=_ocp().args.Composite(state=args(folder)))
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).splitlines() or [""])[0][:200]
        raise CheckpointError(
            f"{folder}: cannot restore it ({type(exc).__name__}: "
            f"{first}); it is damaged or from another configuration; {_way_out(run, step)}"
        ) from exc
    finally:
        manager.close()
    return restored["state"]


def prune(manager, keep: int, protect: set) -> list[int]:
    """Delete all but the latest `keep` checkpoints, never one in `protect`; returns deleted."""
    available = sorted(manager.all_steps())
    kept = set(available[-keep:]) | {s for s in protect if s is not None}
    deleted = [s for s in available if s not in kept]
    with orbax_quiet():
        for step in deleted:
            manager.delete(step)
    return deleted
