"""Training runs: load the data, build or resume the state, run the phases, write the run folder.

`train(config, on_event=...)` is the library entry point; the CLI is a thin wrapper around it.
The run folder holds config.json, checkpoints/, metrics.jsonl and samples/.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import checkpoint
from .config import TrainConfig, incompatible_fields
from .errors import CheckpointError, ConfigError, DataError, NonFiniteError, RefinekitError
from .io import files, pixels, sets
from .io.atomic import atomic_write, temp_target
from .io.encode import encode_image

Event = dict[str, Any]
SAMPLE_COUNT = 8
MIN_TRAIN_SIDE = 4  # TrainConfig's minimum --size


class TrainingInterrupted(RefinekitError):
    """Stopped by SIGINT/SIGTERM after saving a checkpoint."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TrainResult:
    run: Path
    step: int
    metrics: dict[str, float]
    trace_counts: dict[str, int]  # times each jitted function was traced (compiled)


@dataclass
class TrainingData:
    synthetic: np.ndarray  # (N, H, W, C) uint8/uint16
    real: np.ndarray
    info: dict[str, Any]
    skipped: list[str]


def phase_of(config: TrainConfig, step: int) -> str:
    if step < config.pretrain_refiner_steps:
        return "pretrain_refiner"
    if step < config.pretrain_refiner_steps + config.pretrain_disc_steps:
        return "pretrain_disc"
    return "adversarial"


def phase_end(config: TrainConfig, step: int) -> int:
    p1 = config.pretrain_refiner_steps
    p2 = p1 + config.pretrain_disc_steps
    return p1 if step < p1 else p2 if step < p2 else config.total_steps


def _quantise(images_f: np.ndarray, bit_depth: int) -> np.ndarray:
    if bit_depth == 16:
        return np.round(images_f * 65535).astype(np.uint16)
    return np.round(images_f * 255).astype(np.uint8)


def load_training_data(config: TrainConfig) -> tuple[TrainConfig, TrainingData]:
    """Decode both folders with one reading path; resolves `size` and `channels` in the config."""
    syn_paths = files.list_images(Path(config.synthetic), "--synthetic")
    files.list_images(Path(config.real), "--real")
    size = config.size
    if size is None:
        sizes = set(sets.probe_sizes(syn_paths).values())
        if len(sizes) > 1:
            listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
            raise DataError(
                f"--synthetic {config.synthetic}: images have {len(sizes)} different sizes ({listed}); "
                "pass --size H W to train at one size"
            )
        size = sizes.pop() if sizes else None  # none readable: load_set names the first bad file
        if size is not None and min(size) < MIN_TRAIN_SIDE:
            raise DataError(
                f"--synthetic {config.synthetic}: the images are {size[0]}x{size[1]} pixels, "
                f"smaller than the {MIN_TRAIN_SIDE}x{MIN_TRAIN_SIDE} minimum for training; pass "
                f"--size H W (each >= {MIN_TRAIN_SIDE}) to resize them"
            )
    channels = config.channels
    syn = sets.load_set(
        Path(config.synthetic),
        flag="--synthetic",
        channels=channels,
        size=size,
        strict=config.strict,
        seed=config.seed,
    )
    if channels is None:
        if len(syn.source_channels) > 1:
            raise DataError(
                f"--synthetic {config.synthetic}: mixes gray and colour images; pass --channels 1 or 3"
            )
        channels = syn.images.shape[-1]
    real = sets.load_set(
        Path(config.real),
        flag="--real",
        channels=channels,
        size=size,
        crop=config.real_crop,
        strict=config.strict,
        seed=config.seed,
    )
    depth = max(syn.bit_depth, real.bit_depth)
    info = {
        "synthetic": {
            "folder": str(Path(config.synthetic).absolute()),
            "images": len(syn.paths),
            "skipped": len(syn.skipped),
            "fingerprint": files.fingerprint(syn.paths, Path(config.synthetic)),
        },
        "real": {
            "folder": str(Path(config.real).absolute()),
            "images": len(real.paths),
            "skipped": len(real.skipped),
            "fingerprint": files.fingerprint(real.paths, Path(config.real)),
        },
        "bit_depth": depth,
    }
    config = config.replace(size=tuple(syn.images.shape[1:3]), channels=int(channels))
    data = TrainingData(
        _quantise(syn.images, depth),
        _quantise(real.images, depth),
        info,
        syn.skipped + real.skipped,
    )
    return config, data


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "refinekit",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "orbax-checkpoint",
        "numpy",
        "imageio",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def _write_json_atomic(path: Path, data: Any) -> None:
    atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def _remove_temporaries(run: Path) -> None:
    """Delete what killed writes left in the run folder (orbax cleans its own folders)."""
    for folder in (run, run / "samples"):
        if folder.is_dir():
            for path in folder.iterdir():
                if temp_target(path.name) is not None and path.is_file():
                    path.unlink(missing_ok=True)


def _trim_metrics(path: Path, last_step: int) -> None:
    """Drop metric lines written after the checkpoint we resume from (they will be redone)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # a line cut by a kill
    atomic_write(path, "".join(line + "\n" for line in kept).encode())


def resolve_run_config(config: TrainConfig) -> tuple[TrainConfig, int | None]:
    """If `out` holds a run, check the config is compatible and return its latest step."""
    run = Path(config.out)
    _check_run_folder(config)
    saved_path = run / "config.json"
    if not saved_path.exists():
        if run.exists() and _has_files(run) and not (run / "checkpoints").exists():
            raise ConfigError(
                f"--out {run}: exists and is not a refinekit run folder (no config.json); choose another --out"
            )
        return config, None
    try:
        saved = TrainConfig.from_dict(json.loads(saved_path.read_text()), source=str(saved_path))
    except (json.JSONDecodeError, RefinekitError) as exc:
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
    from . import guard

    run = Path(config.out)
    # A read-only run folder is reported by its first write (exit 1, "make it writable").
    guard.check_output_folder("--out", run, writable=False)
    inputs = [("--synthetic", Path(config.synthetic)), ("--real", Path(config.real))]
    guard.check_not_input("--out", run, inputs, output_is_folder=True)


def _has_files(run: Path) -> bool:
    from .lock import is_lock_name

    return any(not is_lock_name(p.name) for p in run.iterdir())


def _check_checkpoint_config(run: Path, step: int, config: TrainConfig) -> None:
    """The checkpoint to resume from must hold this run's model (not one copied from another)."""
    folder = checkpoint.checkpoint_dir(run) / str(step)
    try:
        saved = TrainConfig.from_dict(checkpoint.load_config(run, step), source=f"{folder} config")
    except ConfigError as exc:
        raise CheckpointError(f"checkpoint {folder}: its config is unreadable ({exc})") from exc
    changed = incompatible_fields(saved, config)
    if changed:
        raise CheckpointError(
            f"checkpoint {folder} was saved by another configuration than this run's config.json "
            f"({'; '.join(changed)}); move it out of {folder.parent}, or resume the run it came from"
        )


class _StopFlag:
    """Turns SIGINT/SIGTERM into a request to stop after the current step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(config: TrainConfig, on_event: Callable[[Event], None] | None = None) -> TrainResult:
    """Train (or resume) a SimGAN run described by `config`; returns the final step and metrics.

    on_event receives dicts with a "kind": start, phase, log, sample, checkpoint, done.
    Raises DataError/ConfigError for bad input, NonFiniteError if a loss becomes NaN/inf,
    TrainingInterrupted after saving a checkpoint when SIGINT/SIGTERM arrives, CheckpointError
    for a damaged checkpoint, RefinekitError when the run folder cannot be written (full disk,
    permissions); the last complete checkpoint is kept in every case.
    """
    try:
        with contextlib.ExitStack() as held:  # the run folder's lock, while training
            return _train(config, on_event, held)
    except OSError as exc:
        raise _file_error(config, exc) from exc


def _file_error(config: TrainConfig, exc: OSError) -> RefinekitError:
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


def _train(
    config: TrainConfig, on_event: Callable[[Event], None] | None, held: contextlib.ExitStack
) -> TrainResult:
    import jax

    from .models import patch_geometry
    from .samples import sample_grid
    from .steps import DeviceData, StepFunctions, make_mesh

    emit = on_event or (lambda event: None)
    if not config.out:
        raise ConfigError("--out: a run folder is required")
    config, resume_step = resolve_run_config(config)
    config, data = load_training_data(config)
    run = Path(config.out)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {run}: cannot create the run folder ({exc.strerror})") from exc
    primary = jax.process_index() == 0  # with several hosts, one writes the run folder files
    if primary:
        from .lock import FolderLock

        held.enter_context(FolderLock(run, "--out"))  # one writer; its temporaries are safe
        _remove_temporaries(run)
    config = config.replace(
        extra={"data": data.info, "versions": _versions(), "history_size": config.history_size}
    )
    if resume_step is None:
        if primary:
            _write_json_atomic(run / "config.json", config.to_dict())
    else:
        saved = json.loads((run / "config.json").read_text())
        old_fp = saved.get("extra", {}).get("data", {})
        changed = [
            k
            for k in ("synthetic", "real")
            if old_fp.get(k, {}).get("fingerprint") != data.info[k]["fingerprint"]
        ]
        if changed:
            emit(
                {
                    "kind": "warning",
                    "message": f"the {' and '.join(changed)} data changed since this run started",
                }
            )
        if primary:
            _write_json_atomic(run / "config.json", config.to_dict())

    h, w = config.size
    c = config.channels
    mesh = make_mesh()
    fns = StepFunctions(config, (h, w, c), mesh)
    state = fns.init_state()
    if resume_step is not None:
        state = checkpoint.restore(run, resume_step, state)
        state = jax.device_put(state, fns.replicated)
    start = int(state.step)
    if primary:
        _trim_metrics(run / "metrics.jsonl", start)
    device_data = jax.device_put(DeviceData(data.synthetic, data.real), fns.replicated)
    fixed_syn = np.asarray(to_float(data.synthetic[:SAMPLE_COUNT]))
    fixed_real = np.asarray(
        to_float(data.real[np.linspace(0, len(data.real) - 1, SAMPLE_COUNT).astype(int)])
    )

    geometry = patch_geometry(config.discriminator_layers, (h, w))
    emit(
        {
            "kind": "start",
            "run": str(run),
            "resumed_from": resume_step,
            "start_step": start,
            "total_steps": config.total_steps,
            "size": (h, w),
            "channels": c,
            "geometry": geometry,
            "data": data.info,
            "skipped": data.skipped,
            "devices": [str(d) for d in jax.devices()],
            "history_size": config.history_size,
            "augment": config.augment,
        }
    )

    manager = checkpoint.open_manager(run, keep=config.keep)

    def save(state) -> None:
        bad = int(state.first_bad_step)
        if bad >= 0:
            raise NonFiniteError(
                f"a loss became NaN or infinite at step {bad}; the last good checkpoint stays in {checkpoint.checkpoint_dir(run)} "
                "(try a lower --lr-refiner/--lr-disc)"
            )
        checkpoint.save(manager, int(state.step), state, config.to_dict())
        emit({"kind": "checkpoint", "step": int(state.step)})

    def write_sample(state) -> None:
        if not primary:
            return
        refined = np.asarray(fns.refine(state.refiner, jax.numpy.asarray(fixed_syn)))
        path = run / "samples" / f"step_{int(state.step):07d}.png"
        atomic_write(path, encode_image(sample_grid(fixed_syn, refined, fixed_real), ".png"))
        emit({"kind": "sample", "path": str(path), "step": int(state.step)})

    metrics_file = open(run / "metrics.jsonl" if primary else os.devnull, "a")  # noqa: SIM115 - closed in finally
    step = start
    last_log_time, last_log_step = time.perf_counter(), step
    sums: dict[str, Any] | None = None
    sums_n = 0
    phase = None
    accumulate = jax.jit(lambda a, b: jax.tree.map(lambda x, y: x + y, a, b))
    if step == 0 and config.total_steps > 0:
        write_sample(state)
    try:
        with _StopFlag() as stop:
            while step < config.total_steps:
                if phase_of(config, step) != phase:
                    phase = phase_of(config, step)
                    sums, sums_n = None, 0
                    emit(
                        {
                            "kind": "phase",
                            "phase": phase,
                            "step": step,
                            "end": phase_end(config, step),
                        }
                    )
                boundary = min(
                    phase_end(config, step),
                    _next_multiple(step, config.log_every),
                    _next_multiple(step, config.checkpoint_every),
                    _next_multiple(step, config.sample_every),
                )
                count = config.steps_per_call if step + config.steps_per_call <= boundary else 1
                # The hot path never moves data between host and device: a transfer here raises.
                with jax.transfer_guard("disallow"):
                    state, metrics = fns.multi_step(phase, count)(state, device_data)
                    sums = metrics if sums is None else accumulate(sums, metrics)
                step += count
                sums_n += 1
                if (
                    step % config.log_every == 0
                    or step == phase_end(config, step - 1)
                    or stop.signum
                ):
                    host = {k: float(v) / sums_n for k, v in jax.device_get(sums).items()}
                    now = time.perf_counter()
                    images_per_step = config.batch_size * (
                        config.kg + config.kd if phase == "adversarial" else 1
                    )
                    rate = (step - last_log_step) * images_per_step / max(now - last_log_time, 1e-9)
                    last_log_time, last_log_step = now, step
                    bad = int(state.first_bad_step)
                    record = {"step": step, "phase": phase, **host, "images_per_second": rate}
                    metrics_file.write(json.dumps(record) + "\n")
                    metrics_file.flush()
                    sums, sums_n = None, 0
                    emit({"kind": "log", **record})
                    if bad >= 0:
                        raise NonFiniteError(
                            f"a loss became NaN or infinite at step {bad}; training stopped, the last good checkpoint "
                            f"stays in {checkpoint.checkpoint_dir(run)} (try a lower --lr-refiner/--lr-disc or --lambda-reg)"
                        )
                if step % config.sample_every == 0 or step == config.total_steps:
                    write_sample(state)
                if step % config.checkpoint_every == 0 or step == config.total_steps or stop.signum:
                    save(state)
                if stop.signum:
                    name = signal.Signals(stop.signum).name
                    raise TrainingInterrupted(
                        f"{name}: stopped at step {step} and saved a checkpoint; run the same command again to resume",
                        128 + stop.signum,
                    )
            if (
                resume_step is not None
                and resume_step == step
                and step not in checkpoint.steps(run)
            ):
                save(state)
    finally:
        metrics_file.close()
        manager.close()
    final = {}
    if sums is not None:
        final = {k: float(v) / sums_n for k, v in jax.device_get(sums).items()}
    emit({"kind": "done", "step": step, "run": str(run)})
    return TrainResult(run, step, final, dict(fns.trace_counts))


def to_float(stored: np.ndarray) -> np.ndarray:
    """Stored uint8/uint16 -> float32 in [-1, 1], as the step sees it."""
    return pixels.to_unit_float(stored) * 2.0 - 1.0


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every
