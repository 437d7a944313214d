"""The layout rules of docs/architecture.md: every path the page names exists and its drawing
shows every package folder; `io/`, `refine/` and `cli/` import no JAX; no module is over 400
lines; a run's refiner is restored without the rest of the training state."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "refinekit"
PAGE = ROOT / "docs" / "architecture.md"
# Paths that start with one of these are the repository's; every other one is the package's.
REPOSITORY_FOLDERS = ("src/", "tests/", "docs/", "examples/", "benchmarks/")
PATH = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*(?:\.py|/)")
NAME = re.compile(r"[a-z_][a-z0-9_]*(?:\.py|/)")
JAX_FREE = ("io", "refine", "cli")
MAX_LINES = 400


def _resolve(path: str) -> Path:
    return ROOT / path if path.startswith(REPOSITORY_FOLDERS) else PACKAGE / path


def _prose_paths(text: str) -> list[str]:
    """The backticked paths (`a/b.py`, `a/`) outside the page's fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return [m for m in re.findall(r"`([^`\s]+)`", prose) if PATH.fullmatch(m)]


def _drawing(text: str) -> list[tuple[int, list[str]]]:
    """The folder drawing as (depth, names) per line: two spaces per level; names are separated
    by one space, and from the description after them by two or more."""
    block = re.search(r"^```text\nsrc/refinekit/\n(.*?)^```", text, flags=re.S | re.M)
    assert block, f"{PAGE}: no ```text drawing starting with src/refinekit/"
    lines = []
    for line in block.group(1).splitlines():
        indent = len(line) - len(line.lstrip(" "))
        names = re.split(r" {2,}", line.strip(), maxsplit=1)[0].split(" ")
        assert indent % 2 == 0 and indent >= 2, f"drawing line not indented by levels: {line!r}"
        assert all(NAME.fullmatch(n) for n in names), f"drawing line without names: {line!r}"
        lines.append((indent // 2, names))
    return lines


def _drawn_paths(text: str) -> tuple[list[Path], set[Path]]:
    """Every file and folder the drawing shows, as paths; and the folders alone."""
    paths, folders = [], set()
    parents = [PACKAGE]
    for depth, names in _drawing(text):
        assert depth <= len(parents), f"drawing skips a level at {names}"
        del parents[depth:]
        for name in names:
            path = parents[-1] / name
            paths.append(path)
            if name.endswith("/"):
                folders.add(path)
                parents.append(path)
    return paths, folders


def test_every_path_the_architecture_page_names_exists():
    text = PAGE.read_text()
    named = [_resolve(p) for p in _prose_paths(text)] + _drawn_paths(text)[0]
    assert len(named) > 100  # the parsing found the page's paths
    missing = sorted({str(p.relative_to(ROOT)) for p in named if not p.exists()})
    assert missing == [], f"docs/architecture.md names paths that do not exist: {missing}"


def test_the_drawing_shows_every_package_folder():
    _, drawn = _drawn_paths(PAGE.read_text())
    folders = {p.parent for p in PACKAGE.rglob("__init__.py")} - {PACKAGE}
    undrawn = sorted(str(f.relative_to(PACKAGE)) for f in folders if f not in drawn)
    assert undrawn == [], f"package folders missing from docs/architecture.md's drawing: {undrawn}"


def _modules(folder: str) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


# The package's own __init__.py is replaced by an empty package, so that what is measured is
# the module's imports, not the public API's (test_importing_the_package_loads_no_jax).
_PROBE = """
import importlib, sys, types
package = types.ModuleType("refinekit")
package.__path__ = [sys.argv[1]]
package.__version__ = "0"
sys.modules["refinekit"] = package
importlib.import_module(sys.argv[2])
print(sorted(n for n in ("jax", "flax", "optax", "orbax.checkpoint") if n in sys.modules))
"""


@pytest.mark.slow  # one interpreter per module: the fast tier keeps the package-level check
@pytest.mark.parametrize("module", [m for folder in JAX_FREE for m in _modules(folder)])
def test_module_imports_no_jax(module):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, str(PACKAGE), module],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]", f"importing {module} imports {result.stdout.strip()}"


def test_importing_the_package_loads_no_jax():
    probe = "import sys, refinekit.cli; print('jax' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "False"


def _line_counts() -> dict[str, int]:
    return {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text().splitlines())
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def test_no_module_is_over_400_lines():
    over = {p: n for p, n in _line_counts().items() if n > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines (split them by job): {over}"


def test_a_run_restores_its_refiner_alone(trained, tmp_path, monkeypatch):
    """Only the refiner's average weights are read from a checksummed checkpoint; one without
    checksums is read whole (reading is its only check), and both give the same weights."""
    import jax
    import numpy as np

    from refinekit.inference import refiner as inference
    from refinekit.training import checkpoint

    asked: list[set[str]] = []
    restore_state = checkpoint._restore_state

    def spy(run, step, args):
        def recorded(folder):
            made = args(folder)
            asked.append(set(made.item))
            return made

        return restore_state(run, step, recorded)

    monkeypatch.setattr(checkpoint, "_restore_state", spy)
    step = checkpoint.steps(trained)[-1]
    _, checked = inference._refiner_params_from_run(trained, step)
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    (run / "checkpoints" / str(step) / checkpoint.DIGEST_NAME).unlink()
    _, unchecked = inference._refiner_params_from_run(run, step)
    assert asked[0] == {"ema"}
    assert {"ema", "refiner", "disc", "opt_refiner", "buffer"} <= asked[1]
    assert jax.tree.structure(checked) == jax.tree.structure(unchecked)
    for a, b in zip(jax.tree.leaves(checked), jax.tree.leaves(unchecked), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
