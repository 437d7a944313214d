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


def setup() -> None:
    """Turn on JAX's persistent compilation cache (a second run of the same shapes starts faster)."""
    import jax

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
