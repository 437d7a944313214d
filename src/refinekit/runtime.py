"""Process-wide JAX settings that the CLI applies before any JAX work.

Library code never changes global JAX config on import; commands call `setup()` once.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "REFINEKIT_COMPILE_CACHE"


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


def setup(distributed: bool = False) -> None:
    """Turn on JAX's persistent compilation cache (a second run of the same shapes starts
    faster) and, with `distributed`, join a multi-host job described by the environment."""
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
    wanted = bool(env.get("JAX_COORDINATOR_ADDRESS")) or any(int(env.get(n, "1") or 1) > 1 for n in _MULTI_PROCESS_HINTS[1:])
    if wanted:
        # CPU devices of several processes talk through gloo (GPUs use NCCL regardless).
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if env.get("JAX_COORDINATOR_ADDRESS"):
        jax.distributed.initialize(
            coordinator_address=env["JAX_COORDINATOR_ADDRESS"],
            num_processes=int(env["JAX_NUM_PROCESSES"]),
            process_id=int(env["JAX_PROCESS_ID"]),
        )
        return True
    for name in _MULTI_PROCESS_HINTS[1:]:
        if int(env.get(name, "1") or 1) > 1:
            jax.distributed.initialize()
            return True
    return False
