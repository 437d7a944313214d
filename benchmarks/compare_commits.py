"""Speed of two commits back to back: `refinekit bench` (train and refine) and refine end to end.

    python benchmarks/compare_commits.py OLD NEW [--rounds 2] [--images 4000] [--out runs/cmp]

Each commit's `src/` is exported with `git archive` and run in its own subprocess, alternating
OLD, NEW, NEW, OLD, ... so slow drifts of a shared machine hit both alike. Per round and commit:
`bench --mode train` (gaze, 35x55, batch 64: images/s; gaze, not the default, so that commits
from before the `local` preset compare the same networks), `bench --mode refine` at 32x48 with
batch 32 (model only, images/s) run before and after `refinekit refine` of IMAGES 32x48 gray
PNGs (batch 32), whose images/s over the mean of the two model-only runs is the end-to-end
ratio (docs/performance.md). Prints one table and writes OUT/compare.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np


def export(commit: str, out: Path) -> Path:
    folder = out / f"src-{commit}"
    if not (folder / "src").is_dir():
        archive = subprocess.run(
            ["git", "archive", commit, "src"], check=True, capture_output=True
        ).stdout
        folder.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder / "src"


def make_images(folder: Path, count: int, seed: int) -> None:
    from PIL import Image

    if folder.is_dir() and len(list(folder.glob("*.png"))) == count:
        return
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        image = rng.integers(0, 256, (32, 48), np.uint8)
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def cli(src: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-m", "refinekit", *args], env=env, capture_output=True, text=True
    )


def bench(src: Path, *args: str) -> float:
    done = cli(src, "bench", *args, "--json")
    if done.returncode:
        raise SystemExit(f"bench failed for {src}: {done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"])


def end_to_end(src: Path, run: Path, data: Path, out: Path) -> float:
    # the last checkpoint by number: older commits take only integers for --step
    last = max(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    step = ["--step", str(last)]
    done = cli(src, "refine", str(data), str(out), "--run", str(run), "--batch-size", "32", *step)
    found = re.findall(r"\(([\d.]+) images/s\)", done.stdout + done.stderr)
    if done.returncode or not found:
        raise SystemExit(f"refine failed for {src}: {done.stderr[-2000:]}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--out", type=Path, default=Path("runs/cmp"))
    args = parser.parse_args()
    out = args.out.resolve()
    srcs = {c: export(c, out) for c in (args.old, args.new)}
    make_images(out / "data" / "refine", args.images, 0)
    make_images(out / "data" / "syn", 64, 1)
    make_images(out / "data" / "real", 64, 2)
    runs = {}
    for commit, src in srcs.items():
        runs[commit] = out / f"run-{commit}"
        if not (runs[commit] / "config.json").is_file():
            done = cli(
                src, "train", "--synthetic", str(out / "data" / "syn"), "--real",
                str(out / "data" / "real"), "--out", str(runs[commit]), "--preset", "gaze", "--steps", "2",
                "--pretrain-refiner-steps", "1", "--pretrain-disc-steps", "1",
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"train failed for {commit}: {done.stderr[-2000:]}")
    rows: dict[str, dict[str, list[float]]] = {c: {"train": [], "e2e": []} for c in srcs}
    # The gaze preset exists in every commit; the default changed (to local) at 150b1b4.
    refine_model = ["--mode", "refine", "--preset", "gaze", "--size", "32", "48", "--channels", "1"]
    refine_model += ["--refine-batch", "32", "--repeats", "100"]
    for r in range(args.rounds):
        order = list(srcs) if r % 2 == 0 else list(srcs)[::-1]
        for commit in order + order[::-1]:
            src = srcs[commit]
            rows[commit]["train"].append(
                bench(src, "--mode", "train", "--preset", "gaze", "--repeats", "8")
            )
            before = bench(src, *refine_model)
            target = out / f"refined-{commit}-{len(rows[commit]['e2e'])}"
            e2e = end_to_end(src, runs[commit], out / "data" / "refine", target)
            after = bench(src, *refine_model)
            rows[commit]["e2e"].append(e2e / ((before + after) / 2))
            print(
                f"round {r} {commit}: train {rows[commit]['train'][-1]:.1f} img/s, "
                f"refine model {before:.0f}/{after:.0f} img/s, end to end {e2e:.0f} img/s "
                f"(ratio {rows[commit]['e2e'][-1]:.3f})",
                flush=True,
            )
    summary = {
        c: {k: {"values": v, "median": statistics.median(v)} for k, v in rows[c].items()}
        for c in srcs
    }
    old, new = summary[args.old], summary[args.new]
    print(f"| what | {args.old} | {args.new} | new / old |\n|---|---|---|---|")
    for key, name in (("train", "bench train, img/s"), ("e2e", "refine end to end / model")):
        a, b = old[key]["median"], new[key]["median"]
        print(f"| {name} (median) | {a:.3f} | {b:.3f} | {b / a:.3f} |")
    (out / "compare.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
