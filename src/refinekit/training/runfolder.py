"""The run folder's bookkeeping: config checks on resume, temporaries, metrics trimming, signals.

Kept out of loop.py to keep the loop short.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from ..config import LEGACY, TrainConfig, incompatible_fields
from ..errors import CheckpointError, ConfigError, RefinekitError, UsageError
from ..io import guard
from ..io.atomic import atomic_write, temp_target
from ..io.regular import check_own, read_own_json, read_own_text
from ..limits import check_resources
from ..presets import kind_defaults as defaults_of
from . import checkpoint

METRICS_BYTES_CAP = 1 << 30  # metrics.jsonl: about 2 million log lines


def versions() -> dict[str, str | None]:
    """Package versions recorded in config.json (provenance.py: one list for every output)."""
    from ..provenance import package_versions

    return package_versions()


def write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def remove_temporaries(run: Path) -> None:
    """Delete what killed writes left in the run folder (orbax cleans its own folders)."""
    for folder in (run, run / "samples"):
        if folder.is_dir():
            for path in folder.iterdir():
                if temp_target(path.name) is not None and path.is_file():
                    path.unlink(missing_ok=True)


# The run folder's own files, read back on resume and by the commands that use a run: each is a
# regular file (never a link, never a FIFO) and is validated when read (regular.read_own_*).
STATE_FILES = ("config.json", "metrics.jsonl", "scores.jsonl", "best.json", "validation.json")


def check_state_files(run: Path) -> None:
    """Before any work: each of the run folder's own files is absent or a regular file (a link
    or a FIFO at one of their names is a DataError naming it; a FIFO would block forever)."""
    for name in STATE_FILES:
        check_own(Path(run) / name)


def trim_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be redone)."""
    if not check_own(path):
        return
    kept = []
    for line in read_own_text(path, METRICS_BYTES_CAP).splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    atomic_write(path, "".join(line + "\n" for line in kept).encode())


def resume_defaults(values: Mapping[str, Any]) -> dict[str, Any]:
    """On an existing run, unspecified settings come from its config.json, not the defaults."""
    values = dict(values)
    saved_path = Path(values["out"]) / "config.json"
    if not check_own(saved_path):
        return values
    saved = read_own_json(saved_path)  # a damaged file is a one-line error naming it
    saved = {**LEGACY, **saved}  # a run saved before a setting existed was trained without it
    saved.pop("extra", None)
    for key in ("synthetic", "real", "out"):
        saved.pop(key, None)
    return {**saved, **{k.replace("-", "_"): v for k, v in values.items()}}


def settings_for_run(
    values: Mapping[str, Any], source: str = "settings", from_file: Collection[str] = ()
) -> TrainConfig:
    """The TrainConfig for explicitly given settings (flag names with - or _): on an existing
    run folder the rest come from its config.json, otherwise from the defaults. The CLI and the
    library's train() both resolve settings here, so a resume works alike from both.

    `from_file`: the settings whose values came from the config file `source` (not a flag); a
    bad one is named as the file's key (`--config run.toml: steps: expected ...`)."""
    for required in ("synthetic", "real", "out"):
        if not values.get(required):
            raise UsageError(f"--{required}: required (a folder path)")
    # --refiner auto: each candidate resumes from its own folder (training/auto.py); RUN's own
    # config.json is the winner's copy, not the settings auto was given.
    auto = str(values.get("refiner")) == "auto" or (
        values.get("refiner") is None and is_auto_run(Path(str(values["out"])))
    )
    settings = (
        {k.replace("-", "_"): v for k, v in values.items()} if auto else resume_defaults(values)
    )
    if not auto and settings.get("init_from") and settings.get("refiner") is None:
        # fine-tuning goes on with the source's kind unless another is asked for
        from .transfer import open_source

        settings["refiner"] = open_source(str(settings["init_from"])).config.refiner
    kind = settings.get("refiner", TrainConfig.refiner)
    # The refiner kind's own defaults (presets.REFINER_DEFAULTS) sit under what was given, and
    # with --init-from the shorter schedule (presets.FINE_TUNE_DEFAULTS).
    fine_tune = bool(settings.get("init_from"))
    kind_defaults = defaults_of(kind, fine_tune) if isinstance(kind, str) else {}
    try:
        return TrainConfig.from_dict({**kind_defaults, **settings}, source=source)
    except ConfigError as exc:
        flag = f"--{exc.setting.replace('_', '-')}" if exc.setting else None
        if flag is None or exc.setting not in from_file or not str(exc).startswith(flag):
            raise
        rest = str(exc)[len(flag) :]  # ": expected ...", or " 'huge': expected ..."
        raise ConfigError(f"--config {source}: {exc.setting}{rest}", exc.setting) from None


def is_auto_run(run: Path) -> bool:
    """An `auto` run folder: its candidates' folder exists from its first step on."""
    return (run / "candidates").is_dir()


def resolve_run_config(config: TrainConfig) -> tuple[TrainConfig, int | None]:
    """If `out` holds a run, check the config is compatible and return its latest step."""
    if ".." in Path(config.out).parts:  # created as checked: --out dir/missing/../../run
        config = config.replace(out=str(guard.creatable(Path(config.out))))
    run = Path(config.out)
    _check_run_folder(config)
    if config.size is not None:  # before anything is read: absurd settings together (limits.py)
        check_resources(config, config.size)
    if run.is_dir():
        check_state_files(run)
    saved_path = run / "config.json"
    if not check_own(saved_path):
        if run.exists() and _has_files(run) and not (run / "checkpoints").exists():
            raise ConfigError(
                f"--out {run}: exists and is not a refinekit run folder (no config.json); choose another --out"
            )
        return config, None
    try:
        saved = TrainConfig.from_dict(read_own_json(saved_path), source=str(saved_path), saved=True)
    except RefinekitError as exc:
        raise ConfigError(f"--out {run}: its config.json is unreadable ({exc})") from exc
    fill = {
        name: getattr(saved, name) for name in ("size", "channels") if getattr(config, name) is None
    }
    config = config.replace(**fill)
    last = checkpoint.steps(run)
    changed = incompatible_fields(saved, config)
    if changed and not last:
        return config, None  # nothing was trained with the saved settings: start afresh
    if changed:
        raise ConfigError(
            f"--out {run}: this run was trained with other settings ({'; '.join(changed)}); "
            "use a new --out, or the run's own settings"
        )
    if last:
        _check_checkpoint_config(run, last[-1], config)
    return config, (last[-1] if last else None)


def _check_run_folder(config: TrainConfig) -> None:
    """Before anything is read or written: --out is (or can be) a folder, and it is neither
    an input folder, inside one, nor holding one (guard.py)."""
    from ..io import guard

    run = Path(config.out)
    # A read-only run folder is reported by its first write (exit 1, "make it writable").
    guard.check_output_folder("--out", run, writable=False)
    inputs = [("--synthetic", Path(config.synthetic)), ("--real", Path(config.real))]
    guard.check_not_input("--out", run, inputs, output_is_folder=True)


def _has_files(run: Path) -> bool:
    from ..io.lock import is_lock_name

    return any(not is_lock_name(p.name) for p in run.iterdir())


def _check_checkpoint_config(run: Path, step: int, config: TrainConfig) -> None:
    """The checkpoint to resume from must hold this run's model (not one copied from another)."""
    folder = checkpoint.checkpoint_dir(run) / str(step)
    try:
        saved = TrainConfig.from_dict(
            checkpoint.load_config(run, step), source=f"{folder} config", saved=True
        )
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {folder}: its config is unreadable ({exc})") from exc
    changed = incompatible_fields(saved, config)
    if changed:
        raise CheckpointError(
            f"checkpoint {folder} was saved by another configuration than this run's config.json "
            f"({'; '.join(changed)}); move it out of {folder.parent}, or resume the run it came from"
        )


def file_error(config: TrainConfig, exc: OSError) -> RefinekitError:
    where = exc.filename or config.out
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = "free some disk space"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = "make the run folder writable"
    else:
        hint = "fix the cause"
    return RefinekitError(
        f"{where}: {exc.strerror or exc}; training stopped and the last complete checkpoint "
        f"is kept: {hint}, then run the same command again to resume"
    )
