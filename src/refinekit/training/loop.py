"""Training runs: open the run folder, build or resume the state, run the schedule.

`train(config, on_event=..., should_stop=...)` is the library entry point; the CLI is a thin
wrapper around it that owns the signal handlers. The run folder holds config.json,
checkpoints/, metrics.jsonl and samples/.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import refiners, runtime
from ..config import TrainConfig
from ..errors import ConfigError, NonFiniteError
from ..events import Finished, Note, OnEvent, Progress, Saved, Stage, Started, ignore
from ..io import pixels
from ..io.atomic import atomic_write
from ..io.encode import encode_image
from ..stop import Interrupted
from . import checkpoint, labels
from .data import load_training_data
from .phases import next_multiple, phase_end, phase_of
from .runfolder import (
    file_error,
    remove_temporaries,
    resolve_run_config,
    trim_metrics,
    versions,
    write_json_atomic,
)

SAMPLE_COUNT = 8
# Fewer real training images than this: train warns that the discriminator will memorise them.
FEW_REAL = 10


@dataclass
class TrainResult:
    run: Path
    step: int
    metrics: dict[str, float]
    trace_counts: dict[str, int]  # times each jitted function was traced (compiled)


def train(
    config: TrainConfig | Mapping[str, Any],
    on_event: OnEvent | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train (or resume) a run described by `config`; returns the final step and metrics.

    `config` is a TrainConfig, or a mapping of the settings you choose (keys as TrainConfig's
    fields or the CLI's flag names): then, as with `refinekit train`, an existing run folder
    supplies every setting not given, so the same call resumes it.

    on_event receives refinekit.events (docs/api.md): Started, a Stage per phase, a Progress per
    log interval (its values the metrics.jsonl record), Saved checkpoints, samples and scores,
    Notes (warnings, health warnings), then Finished.
    should_stop is asked after every jitted call; when it returns True, train saves a
    checkpoint and raises stop.Interrupted (exit code 1; the CLI turns a signal into 128 + its
    number). The library installs no signal handler.
    Raises DataError/ConfigError for bad input, NonFiniteError if a loss becomes NaN/inf,
    CheckpointError for a damaged checkpoint, RefinekitError when the run folder cannot be
    written (full disk, permissions); the last complete checkpoint is kept in every case.
    """
    if not isinstance(config, TrainConfig):
        from .runfolder import settings_for_run

        config = settings_for_run(config, source="train()")
    if config.refiner == "auto":  # candidates in RUN/candidates/, the winner copied into RUN
        from .auto import train_auto

        return train_auto(config, on_event or ignore, should_stop or _never, train)
    try:
        with contextlib.ExitStack() as resources:  # the run folder's lock, while training
            return _train(config, on_event or ignore, should_stop or _never, resources)
    except OSError as exc:
        raise file_error(config, exc) from exc


def _never() -> bool:
    return False


def _check_finite(state: Any, run: Path, advice: str) -> None:
    """The one non-finite check: the steps record the first bad step on the device."""
    bad = int(state.first_bad_step)
    if bad >= 0:
        raise NonFiniteError(
            f"a loss became NaN or infinite at step {bad}; the last good checkpoint stays in "
            f"{checkpoint.checkpoint_dir(run)} ({advice})"
        )


def _open_run(
    config: TrainConfig, emit: OnEvent, resources: contextlib.ExitStack
) -> tuple[TrainConfig, int | None, Any, Any, bool]:
    """Check the settings, read the data, lock and record the run folder, split validation off.

    Returns (config, the step a resumed run restarts from or None, the training data, the
    held-out validation images, whether this process writes the run folder)."""
    import jax

    from . import watch
    from .augment import parse_policy

    if not config.out:
        raise ConfigError("--out: a run folder is required")
    parse_policy(config.augment_policy, config.channels or 3)  # before anything is read or written
    config, resume_step = resolve_run_config(config)
    config, data = load_training_data(config)
    run = Path(config.out)
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {run}: cannot create the run folder ({exc.strerror})") from exc
    primary = jax.process_index() == 0  # with several hosts, one writes the run folder files
    if primary:
        from ..io.lock import FolderLock

        resources.enter_context(FolderLock(run, "--out"))  # one writer; its temporaries are safe
        remove_temporaries(run)
    config = config.replace(
        extra={
            "data": data.info,
            "versions": versions(),
            "history_size": config.history_size,
            **labels.config_extra(data.labels),
        }
    )
    labels.check_conditional(config)
    data, held = watch.split_off(data, config, run, primary)  # validation images leave here
    config.extra["validation"] = {"real": len(held.real), "synthetic": len(held.synthetic)}
    if len(data.real) < FEW_REAL and config.total_steps > 0:  # training-free: no discriminator
        emit(
            Note(
                "train",
                "warning",
                f"only {len(data.real)} real image(s) to train on (after the validation split): "
                f"the discriminator will memorise them; use at least {FEW_REAL}, many more if "
                "you can",
                details={"real": len(data.real)},
            )
        )
    if resume_step is not None:
        saved = json.loads((run / "config.json").read_text()).get("extra", {}).get("data", {})
        changed = [
            k
            for k in ("synthetic", "real")
            if saved.get(k, {}).get("fingerprint") != data.info[k]["fingerprint"]
        ]
        if changed:
            emit(
                Note(
                    "train",
                    "warning",
                    f"the {' and '.join(changed)} data changed since this run started",
                )
            )
    if primary:
        write_json_atomic(run / "config.json", config.to_dict())
    return config, resume_step, data, held, primary


def _train(
    config: TrainConfig,
    emit: OnEvent,
    should_stop: Callable[[], bool],
    resources: contextlib.ExitStack,
) -> TrainResult:
    import jax

    from ..nn.models import patch_geometry
    from . import health, watch
    from .labels import terms as label_terms
    from .samples import sample_grid, sample_indices
    from .state import DeviceData, make_mesh, pad_to_bucket
    from .steps import StepFunctions

    config, resume_step, data, held, primary = _open_run(config, emit, resources)
    run = Path(config.out)
    # load_training_data resolved both from the synthetic images.
    assert config.size is not None and config.channels is not None
    h, w = config.size
    c = config.channels
    mesh = make_mesh()
    runtime.connect_processes(mesh)  # several hosts: connect before any process runs ahead
    fns = StepFunctions(config, (h, w, c), mesh)
    state = fns.init_state()
    from .transfer import start_from  # --init-from: another run's weights, where they fit

    state, classifier_given = start_from(config, fns, state, emit, resume_step, primary)
    if resume_step is None:  # a training-free kind's parameters come from the data
        state = refiners.fit_to_data(config, state, data.real)
    else:
        state = checkpoint.restore(run, resume_step, state)
        state = jax.device_put(state, fns.replicated)
    start = int(state.step)
    if primary:
        trim_metrics(run / "metrics.jsonl", start)
    syn_ids, real_ids = labels.id_arrays(data.labels, len(data.synthetic), len(data.real))
    device_data = jax.device_put(
        pad_to_bucket(
            DeviceData(
                data.synthetic,
                data.real,
                *labels.id_arrays(data.labels, len(data.synthetic), len(data.real)),
                adversarial_start=np.asarray(
                    config.pretrain_refiner_steps + config.pretrain_disc_steps, np.int32
                ),
            )
        ),
        fns.replicated,
    )
    shown = sample_indices(syn_ids, len(data.synthetic), config.seed, SAMPLE_COUNT)
    fixed_syn = np.asarray(pixels.to_model_range(data.synthetic[shown]))
    fixed_real = np.asarray(
        pixels.to_model_range(data.real[np.linspace(0, len(data.real) - 1, len(shown)).astype(int)])
    )
    # The training sets' own shift (health.mean_shift) sets the drift sign's floor.
    shift = health.mean_shift(data.synthetic, data.real)
    watcher = watch.RunWatcher(
        run, config, fns, held, emit, primary, data_shift=shift, synthetic=(data.synthetic, syn_ids)
    )
    if resume_step is not None:
        watcher.resume(start)

    emit(
        Started(
            "train",
            config.total_steps,
            start,
            {
                "run": str(run),
                "resumed_from": resume_step,
                "size": (h, w),
                "channels": c,
                "geometry": patch_geometry(config.discriminator_layers, (h, w)),
                "data": data.info,
                "skipped": data.skipped,
                "devices": [str(d) for d in jax.devices()],
                "history_size": config.history_size,
                "augment": config.augment,
                "labels": fns.label_terms.plan.reasons,
            },
        )
    )
    # The label classifier's own phase (fresh runs; a resumed state holds it already).
    state = label_terms.prepare(
        fns.label_terms,
        state,
        device_data.synthetic[: len(data.synthetic)],  # C's own phase samples every image
        syn_ids,
        resume_step is not None or classifier_given,
        emit,
    )

    manager = checkpoint.open_manager(run)  # watcher prunes to --keep, sparing the best

    def save(state) -> None:
        _check_finite(state, run, "try a lower --lr-refiner/--lr-disc")
        step = int(state.step)
        scores = watcher.score(state, step, phase_of(config, step - 1) if step else "fitted")
        saved = config.to_dict()
        saved["extra"] = {**saved["extra"], "scores": scores}
        checkpoint.save(manager, step, state, saved)
        emit(Saved("train", "checkpoint", step, checkpoint.checkpoint_dir(run) / str(step)))
        watcher.after_save(scores, manager)
        runtime.sync_processes("saved")  # the primary wrote the scores and the page alone

    def write_sample(state) -> None:
        if primary:
            refined = np.asarray(fns.refine(state.ema, jax.numpy.asarray(fixed_syn)))
            path = run / "samples" / f"step_{int(state.step):07d}.png"
            atomic_write(path, encode_image(sample_grid(fixed_syn, refined, fixed_real), ".png"))
            watcher.latest_sample = path
            emit(Saved("train", "sample", int(state.step), path))
        runtime.sync_processes("sample")  # the others wait (not in a collective) while it draws

    from ..io.regular import open_own  # never through a link, never a FIFO

    metrics_file = (
        os.fdopen(open_own(run / "metrics.jsonl", append=True), "a")
        if primary
        else open(os.devnull, "a")  # noqa: SIM115 - closed in finally
    )
    step = start
    last_log_time, last_log_step = time.perf_counter(), step
    sums: dict[str, Any] | None = None
    sums_n = 0
    phase: str | None = None
    accumulate = jax.jit(lambda a, b: jax.tree.map(lambda x, y: x + y, a, b))
    if step == 0:
        write_sample(state)
    if config.total_steps == 0 and not checkpoint.steps(run):
        save(state)  # a training-free kind: its one checkpoint, fitted to the data
    try:
        # The schedule: phases in order; within one, jitted calls of steps_per_call steps that
        # stop at every log, sample and checkpoint boundary.
        while step < config.total_steps:
            if phase_of(config, step) != phase:
                phase = phase_of(config, step)
                sums, sums_n = None, 0
                emit(Stage("train", phase, phase_end(config, step), step))
            boundary = min(
                phase_end(config, step),
                next_multiple(step, config.log_every),
                next_multiple(step, config.checkpoint_every),
                next_multiple(step, config.sample_every),
            )
            count = config.steps_per_call if step + config.steps_per_call <= boundary else 1
            assert phase is not None  # set on the first pass above (None != any phase)
            # The hot path never moves data between host and device: a transfer here raises.
            with jax.transfer_guard("disallow"):
                state, metrics = fns.multi_step(phase, count)(state, device_data)
                sums = metrics if sums is None else accumulate(sums, metrics)
            step += count
            sums_n += 1
            stopping = should_stop()
            if step % config.log_every == 0 or step == phase_end(config, step - 1) or stopping:
                host = {k: float(v) / sums_n for k, v in jax.device_get(sums).items()}
                now = time.perf_counter()
                images_per_step = config.batch_size * (
                    config.kg + config.kd if phase == "adversarial" else 1
                )
                rate = (step - last_log_step) * images_per_step / max(now - last_log_time, 1e-9)
                last_log_time, last_log_step = now, step
                record = {"step": step, "phase": phase, **host, "images_per_second": rate}
                record = watcher.on_log(record)
                metrics_file.write(json.dumps(record) + "\n")
                metrics_file.flush()
                sums, sums_n = None, 0
                emit(Progress("train", phase, step, config.total_steps, dict(record)))
                _check_finite(state, run, "try a lower --lr-refiner/--lr-disc or --lambda-reg")
                watcher.stop_if_collapsed(record)
            if step % config.sample_every == 0 or step == config.total_steps:
                write_sample(state)
            if step % config.checkpoint_every == 0 or step == config.total_steps or stopping:
                save(state)
            if stopping:
                raise Interrupted(
                    f"stopped at step {step} and saved a checkpoint; "
                    "run the same command again to resume",
                    1,
                )
        if resume_step is not None and resume_step == step and step not in checkpoint.steps(run):
            save(state)
    finally:
        metrics_file.close()
        manager.close()
        watcher.write_page()
    final = {}
    if sums is not None:
        final = {k: float(v) / sums_n for k, v in jax.device_get(sums).items()}
    emit(Finished("train", {"step": step, "run": str(run)}))
    return TrainResult(run, step, final, dict(fns.trace_counts))
