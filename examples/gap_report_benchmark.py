"""Time `refinekit gap-report` on two sets of 5,000 64x64 RGB PNG images (the docs/gap-report.md figure).

    python examples/gap_report_benchmark.py [--count 5000] [--size 64] [--refined] [--keep DIR]

Writes the images to a temporary folder (or --keep DIR), then runs the report through the
library with a progress callback that prints each stage's wall time. Pin the cores to mimic a
small machine, e.g. `taskset -c 0,1 python examples/gap_report_benchmark.py`. Reports the
machine's load average, since a shared CPU slows everything down.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np


def eyes(count: int, size: int, seed: int, grain: float) -> np.ndarray:
    """Aligned eye images (sclera, iris, pupil, lid); `grain` = sensor noise ("real")."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    tint = np.array([1.0, 0.8, 0.65], np.float32)
    out = np.empty((count, size, size, 3), np.uint8)

    def soft(v):
        return 1.0 / (1.0 + np.exp(np.clip(v * 12.0, -50, 50)))

    for i in range(count):
        image = rng.uniform(0.45, 0.75) * tint * (0.85 + 0.3 * yy[..., None])
        cy, cx = 0.5 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
        ry, rx = rng.uniform(0.16, 0.24), rng.uniform(0.34, 0.42)
        eye = soft(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 - 1.0)[..., None]
        image = image * (1 - eye) + eye * rng.uniform(0.8, 0.95)
        gy, gx = cy + rng.normal(0, 0.03), cx + rng.uniform(-0.18, 0.18)
        iris = soft(np.hypot(yy - gy, xx - gx) / (ry * 0.9) - 1.0)[..., None] * eye
        image = image * (1 - iris) + iris * rng.uniform(0.1, 0.5, 3)
        image = image + rng.normal(0, grain, image.shape)
        out[i] = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    return out


def write(folder: Path, images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        iio.imwrite(folder / f"img_{i:05d}.png", image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--refined", action="store_true", help="also a third (refined) set")
    parser.add_argument("--keep", type=Path, help="write the images here and keep them")
    args = parser.parse_args()

    from refinekit.events import Stage
    from refinekit.gap import gap_report

    root = args.keep or Path(tempfile.mkdtemp(prefix="gap-bench-"))
    wanted = {
        "real": (1, 0.03),
        "synthetic": (2, 0.0),
        **({"refined": (3, 0.02)} if args.refined else {}),
    }
    for name, (seed, grain) in wanted.items():
        if not (root / name).is_dir():
            write(root / name, eyes(args.count, args.size, seed, grain))

    marks: list[tuple[str, float]] = []

    def on_event(event) -> None:
        if isinstance(event, Stage):
            marks.append((event.name, time.perf_counter()))

    load_before = os.getloadavg()
    start = time.perf_counter()
    report = gap_report(
        root / "real",
        root / "synthetic",
        refined=root / "refined" if args.refined else None,
        json_path=root / "gap.json",
        html_path=root / "gap.html",
        on_event=on_event,
    )
    total = time.perf_counter() - start
    marks.append(("end", time.perf_counter()))
    for (label, t0), (_, t1) in zip(marks, marks[1:], strict=False):
        print(f"{label:36s} {t1 - t0:7.1f} s")
    print(f"{'total':36s} {total:7.1f} s")
    print(
        f"cpus available: {len(os.sched_getaffinity(0))}, load average before/after: "
        f"{load_before[0]:.2f} / {os.getloadavg()[0]:.2f}"
    )
    print(report.verdict)


if __name__ == "__main__":
    main()
