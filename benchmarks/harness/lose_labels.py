"""A refinement that really lost a known share of its labels, to check a retention measure.

Copies a refined set in class folders, replacing each image with probability FRACTION (seeded)
by a refined image of another class under the same name. Paired with the synthetic set by name,
that share of images now shows another class than its synthetic original, so an exact retention
measure reads (1 - FRACTION) times what it reads on the unchanged set.

    python benchmarks/harness/lose_labels.py REFINED OUT 0.2
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path


def lose_labels(source: Path, target: Path, fraction: float, seed: int = 0) -> int:
    """Write the copy into `target`; the number of images replaced."""
    rng = random.Random(seed)
    files = sorted(source.rglob("*.png"))
    by_class: dict[str, list[Path]] = {}
    for path in files:
        by_class.setdefault(path.parent.name, []).append(path)
    replaced = 0
    for path in files:
        out = target / path.relative_to(source)
        out.parent.mkdir(parents=True, exist_ok=True)
        if rng.random() < fraction:
            other = rng.choice([c for c in by_class if c != path.parent.name])
            shutil.copy(rng.choice(by_class[other]), out)
            replaced += 1
        else:
            shutil.copy(path, out)
    return replaced


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    n = lose_labels(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]))
    print(f"{n} images replaced by another class's")
