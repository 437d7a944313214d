"""Process-wide JAX settings that the CLI applies before any JAX work.

Library code never changes global JAX config on import; commands call `setup()` once.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

CACHE_ENV = "REFINEKIT_COMPILE_CACHE"

# XLA:CPU runs its convolutions' matrix products through YNNPACK when asked; measured on the
# 2-core CPU machine (docs/performance.md) this doubles training and refine throughput. Which
# fusions help differs: elementwise/reduce fusions speed up the training step (+25%) but slow the
# forward-only refiner (-10%), so each command picks its own. A user's XLA_FLAGS entry wins.
CPU_FLAGS = {
    "train": "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce",
    "refine": "--xla_cpu_experimental_ynn_fusion_type=dot",
}


USER_FLAGS_ENV = "REFINEKIT_USER_XLA_FLAGS"


def user_environment() -> dict[str, str]:
    """os.environ with XLA_FLAGS as the user set it (a child picks its own defaults)."""
    env = dict(os.environ)
    if USER_FLAGS_ENV in env:
        env["XLA_FLAGS"] = env.pop(USER_FLAGS_ENV)
    return env


def apply_cpu_flags(kind: str) -> None:
    """Add refinekit's XLA:CPU defaults for `kind` to XLA_FLAGS (before JAX starts its backend)."""
    flag = CPU_FLAGS[kind]
    if not _jaxlib_at_least(0, 10):
        return  # older XLA builds abort on flags they do not know
    current = os.environ.get("XLA_FLAGS", "")
    os.environ.setdefault(USER_FLAGS_ENV, current)  # what the user set, for child processes
    name = flag.split("=")[0]
    if os.environ.get("REFINEKIT_XLA_DEFAULTS", "1") == "0" or name in current:
        return
    os.environ["XLA_FLAGS"] = f"{current} {flag}".strip()


def cache_dir() -> Path | None:
    """Where compiled XLA programs are kept between runs; None when disabled.

    Default: $XDG_CACHE_HOME/refinekit/jax (~/.cache/refinekit/jax). Set REFINEKIT_COMPILE_CACHE
    to another folder, or to "off" to disable it.
    """
    value = os.environ.get(CACHE_ENV)
    if value and value.lower() in ("off", "0", "false", "none"):
        return None
    if value:
        return Path(value).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "refinekit" / "jax"


def _jaxlib_at_least(major: int, minor: int) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        parts = version("jaxlib").split(".")
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (PackageNotFoundError, ValueError, IndexError):
        return False


def setup(distributed: bool = False, kind: str = "refine") -> None:
    """Apply the XLA:CPU defaults for `kind` ("train" or "refine"), turn on JAX's persistent
    compilation cache (a second run of the same shapes starts faster) and, with
    `distributed`, join a multi-host job described by the environment."""
    apply_cpu_flags(kind)
    import jax

    if distributed:
        initialize_distributed()
    path = cache_dir()
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # read-only home: run without the cache
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# Environment variables that mean "this process is one of several": jax.distributed.initialize()
# reads the cluster layout from them (SLURM, Open MPI) or from JAX's own variables.
_MULTI_PROCESS_HINTS = ("JAX_COORDINATOR_ADDRESS", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE")


def initialize_distributed() -> bool:
    """Join a multi-host JAX job when the environment describes one; True if it did.

    JAX_COORDINATOR_ADDRESS (host:port of process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID are
    passed explicitly; under SLURM (srun) or Open MPI (mpirun) jax.distributed detects them.
    A single task (SLURM_STEP_NUM_TASKS=1) stays single-process.
    """
    import jax

    env = os.environ
    wanted = bool(env.get("JAX_COORDINATOR_ADDRESS")) or any(
        int(env.get(n, "1") or 1) > 1 for n in _MULTI_PROCESS_HINTS[1:]
    )
    if wanted:
        # CPU devices of several processes talk through gloo (GPUs use NCCL regardless).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if env.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
            # Bounded waits. The shutdown barrier at exit waits longer than any other barrier:
            # a process stuck at one gives up first, says where, and joins the shutdown (else
            # the coordination service aborts both when the shutdown barrier expires).
            initialization_timeout=int(process_wait_s()),
            shutdown_timeout_seconds=int(2 * process_wait_s()) + 30,
        )
        return True
    for name in _MULTI_PROCESS_HINTS[1:]:
        if int(env.get(name, "1") or 1) > 1:
            jax.distributed.initialize()
            return True
    return False


_barrier_ids = itertools.count()
_passed: list[str] = []  # the barriers this process got through, in order


def process_wait_s() -> float:
    """How long a process of a multi-host job waits for the others (joining, each barrier, the
    shutdown at exit) before it stops with an error: REFINEKIT_PROCESS_WAIT_S, else 900 s."""
    return float(os.environ.get("REFINEKIT_PROCESS_WAIT_S") or 900.0)


def sync_processes(name: str, timeout_s: float | None = None) -> None:
    """Wait until every process of a multi-host job gets here; a no-op for one process.

    A barrier of JAX's coordination service, not a collective: it waits up to `timeout_s`
    (process_wait_s() by default), where a CPU (gloo) collective gives up on a late peer after
    a fixed 30 s. When the others do not come, the error names this barrier and the ones this
    process passed, so each process's output says where it stopped.
    """
    import jax

    if jax.process_count() == 1:
        return
    from orbax.checkpoint import multihost

    from .errors import RefinekitError

    wait = process_wait_s() if timeout_s is None else timeout_s
    key = f"refinekit-{name}-{next(_barrier_ids)}"
    try:
        multihost.get_barrier_sync_fn()(key=key, timeout_ms=int(wait * 1000))
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise RefinekitError(
            f"process {jax.process_index()} of {jax.process_count()}: waited {wait:.0f} s at "
            f"the '{name}' barrier and not every process arrived (barriers passed: "
            f"{', '.join(_passed) or 'none'}); the other processes' output says where they "
            f"stopped ({reason})"
        ) from exc
    _passed.append(name)


def connect_processes(mesh: Any) -> None:
    """Open the processes' collective connections while all of them wait at one barrier.

    On CPU, gloo connects at the first collective and fails ("Gloo context initialization
    failed: DEADLINE_EXCEEDED") when a peer arrives more than 30 s later, which happens on a
    loaded machine when one process still compiles or writes the run folder. So the processes
    meet first, then run one tiny all-reduce at once; later collectives reuse the connection.
    """
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    if jax.process_count() == 1:
        return
    sync_processes("connect")
    axis = mesh.axis_names[0]
    ones = np.ones(len(mesh.local_devices), np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, PartitionSpec(axis)), ones)
    total = jax.jit(lambda v: v.sum(), out_shardings=NamedSharding(mesh, PartitionSpec()))(x)
    total.block_until_ready()
