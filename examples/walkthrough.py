"""The refinekit walkthrough on the bundled procedural eye data set (a few minutes on 2 CPU cores).

1. generate 1200 synthetic eyes (with JSON labels) and 200 "real" camera-like eyes;
2. `refinekit train --refiner acquisition`: fit a camera model to the real eyes (their gap is
   one of acquisition: blur, noise, low contrast, vignetting); `--refiner resnet` trains the
   SimGAN ResNet instead (shrunk from the paper's nets to run fast);
3. `refinekit refine` the synthetic folder (labels copied alongside, layout unchanged);
4. `refinekit gap-report` how far synthetic, and refined, images are from real ones.

    python examples/walkthrough.py [--out runs/walkthrough] [--steps 600] [--refiner resnet]

Every command it runs is printed, so you can copy them for your own data.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run(*args: str) -> None:
    cmd = (
        [sys.executable, "-m", "refinekit", *args]
        if args[0] != "make"
        else [sys.executable, str(HERE / "make_eyes.py"), *args[1:]]
    )
    shown = (
        ["refinekit", *args]
        if args[0] != "make"
        else ["python", "examples/make_eyes.py", *args[1:]]
    )
    print("\n$ " + shlex.join(shown), flush=True)
    code = subprocess.call(cmd)
    if code:
        sys.exit(code)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/walkthrough"))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument(
        "--refiner", choices=("acquisition", "resnet", "acquisition+resnet"), default="acquisition"
    )
    args = parser.parse_args()
    data, run_dir = args.out / "data", args.out / "run"
    if not (data / "synthetic").exists():
        run("make", str(data))
    # The ResNet is shrunk (and pretrained for 200 steps) to run in minutes; a camera model
    # needs neither.
    networks = (
        []
        if args.refiner == "acquisition"
        else ["--width", "32", "--blocks", "2", "--pretrain-refiner-steps", "200"]
    )
    run(
        "train",
        "--synthetic",
        str(data / "synthetic"),
        "--real",
        str(data / "real"),
        "--out",
        str(run_dir),
        "--refiner",
        args.refiner,
        *networks,
        "--steps",
        str(args.steps),
        "--pretrain-disc-steps",
        "50",
        "--sample-every",
        "100",
        "--log-every",
        "50",
    )
    run("refine", str(data / "synthetic"), str(args.out / "refined"), "--run", str(run_dir))
    run(
        "gap-report",
        "--real",
        str(data / "real"),
        "--synthetic",
        str(data / "synthetic"),
        "--refined",
        str(args.out / "refined"),
        "--json",
        str(args.out / "gap.json"),
        "--html",
        str(args.out / "gap.html"),
    )
    samples = sorted((run_dir / "samples").glob("step_*.png"))
    print(
        f"\nDone. Look at {samples[-1] if samples else run_dir / 'samples'} (rows: synthetic, refined, "
        f"signed difference, real) and open {args.out / 'gap.html'}."
    )


if __name__ == "__main__":
    main()
