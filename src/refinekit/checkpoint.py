"""Checkpoints of a run: the only module that imports orbax.

Layout: RUN/checkpoints/<step>/{state, config}. Each checkpoint carries the full config as
JSON, so it can be restored with no other input. Saves are atomic (orbax writes to a
temporary folder and renames it), so a kill during a save leaves the previous one intact.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .errors import CheckpointError

# orbax logs every save at INFO through absl; keep the user's terminal for our own messages.
logging.getLogger("absl").setLevel(logging.ERROR)


def _ocp():
    import orbax.checkpoint as ocp

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
    return ocp.CheckpointManager(checkpoint_dir(run), options=options, item_names=("state", "config"))


def save(manager, step: int, state: Any, config: dict) -> None:
    ocp = _ocp()
    manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), config=ocp.args.JsonSave(config)),
        force=True,
    )
    manager.wait_until_finished()


def steps(run: Path) -> list[int]:
    """Complete checkpoints of a run, oldest first (empty if none)."""
    if not checkpoint_dir(run).is_dir():
        return []
    manager = open_manager(run, read_only=True)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def pick_step(run: Path, step: int | None) -> int:
    available = steps(run)
    if not available:
        raise CheckpointError(f"{run}: no checkpoint found in {checkpoint_dir(run)} (train first, or check the path)")
    if step is None:
        return available[-1]
    if step not in available:
        raise CheckpointError(f"--step {step}: no such checkpoint in {run} (available: {', '.join(map(str, available))})")
    return step


def load_config(run: Path, step: int) -> dict:
    path = checkpoint_dir(run) / str(step) / "config" / "metadata"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        pass
    manager = open_manager(run, read_only=True)
    try:
        return manager.restore(step, args=_ocp().args.Composite(config=_ocp().args.JsonRestore()))["config"]
    except Exception as exc:  # noqa: BLE001 - orbax raises many types for a damaged folder
        raise CheckpointError(f"{checkpoint_dir(run) / str(step)}: cannot read its config ({exc})") from exc
    finally:
        manager.close()


def restore(run: Path, step: int, target: Any) -> Any:
    """Restore the state saved at `step` into the structure, shapes and shardings of `target`."""
    import jax

    ocp = _ocp()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    manager = open_manager(run, read_only=True)
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(
            f"{checkpoint_dir(run) / str(step)}: cannot restore it ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "it is damaged or from another configuration"
        ) from exc
    finally:
        manager.close()
    return restored["state"]
