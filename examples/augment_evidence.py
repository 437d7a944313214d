"""Does discriminator augmentation help with few real images? Measure it with gap-report.

For each real-set size (50, 200) and each --augment mode (none, diffaugment, ada): train on the
procedural eye data with that many real images, refine the synthetic set, and compare the
refined set with a held-out real set of 500 images (never seen in training) using
`refinekit gap-report` (KID and the domain classifier, with bootstrap intervals).

    python examples/augment_evidence.py OUT [--stage train|report|all] [--steps 600]

Writes OUT/table.md with one row per run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = (50, 200)
MODES = ("none", "diffaugment", "ada")


def sh(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def refinekit(*args: str) -> None:
    sh(sys.executable, "-m", "refinekit", *args)


def make_data(out: Path) -> None:
    if (out / "data").exists():
        return
    sh(
        sys.executable,
        str(HERE / "make_eyes.py"),
        str(out / "data" / "train"),
        "--synthetic",
        "1000",
        "--real",
        "200",
        "--seed",
        "1",
    )
    sh(
        sys.executable,
        str(HERE / "make_eyes.py"),
        str(out / "data" / "heldout"),
        "--synthetic",
        "0",
        "--real",
        "500",
        "--seed",
        "2",
    )
    # the 50-image real set is a subset of the 200-image one
    small = out / "data" / "real50"
    for i, path in enumerate(sorted((out / "data" / "train" / "real").rglob("*.png"))[:50]):
        target = small / path.relative_to(out / "data" / "train" / "real")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
        del i


def real_dir(out: Path, size: int) -> Path:
    return out / "data" / ("real50" if size == 50 else "train" / Path("real"))


def train_all(out: Path, steps: int) -> None:
    for size in SIZES:
        for mode in MODES:
            run = out / f"real{size}_{mode}"
            refinekit(
                "train",
                "--synthetic",
                str(out / "data" / "train" / "synthetic"),
                "--real",
                str(real_dir(out, size)),
                "--out",
                str(run / "run"),
                "--width",
                "32",
                "--blocks",
                "2",
                "--steps",
                str(steps),
                "--pretrain-refiner-steps",
                "200",
                "--pretrain-disc-steps",
                "50",
                "--augment",
                mode,
                "--sample-every",
                "200",
                "--log-every",
                "50",
            )
            refinekit(
                "refine",
                str(out / "data" / "train" / "synthetic"),
                str(run / "refined"),
                "--run",
                str(run / "run"),
            )


def report_all(out: Path) -> None:
    rows = []
    for size in SIZES:
        for mode in MODES:
            run = out / f"real{size}_{mode}"
            report = run / "gap.json"
            if not report.exists():
                refinekit(
                    "gap-report",
                    "--real",
                    str(out / "data" / "heldout" / "real"),
                    "--synthetic",
                    str(out / "data" / "train" / "synthetic"),
                    "--refined",
                    str(run / "refined"),
                    "--json",
                    str(report),
                    "--html",
                    str(run / "gap.html"),
                )
            rows.append((size, mode, json.loads(report.read_text())))
    (out / "rows.json").write_text(json.dumps([[s, m, r] for s, m, r in rows]))
    print(f"wrote {out / 'rows.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--stage", choices=("train", "report", "all"), default="all")
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    make_data(args.out)
    if args.stage in ("train", "all"):
        train_all(args.out, args.steps)
    if args.stage in ("report", "all"):
        report_all(args.out)


if __name__ == "__main__":
    main()
