"""What produced a result: package versions, recorded in run folders, exports and reports."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

# The packages whose versions change the numbers refinekit computes.
PACKAGES = ("refinekit", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "imageio")


def package_version(name: str) -> str | None:
    """The installed version of `name`, or None when it is not installed."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str | None]:
    """Python and every package in `packages`, by name (None: not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        out[name] = package_version(name)
    return out
