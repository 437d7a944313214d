"""Does refinekit's downstream score rank training sets as an independent CNN does?

For each case, the score (refinekit.downstream, what train and auto choose by) of two training
sets whose order the harness knows, raw synthetic and the oracle (the synthetic content through
the real camera), both tested on the case's 1,000 real test images so only the judge's own
power is measured (train's 80 held-out images add their noise on top). Each setting is a number
of training images and whether inputs are standardised; the independent judge's accuracies are
read from a harness baseline.json (benchmarks/harness/judges.py's CNN).

    python benchmarks/harness/judge_agreement.py --cases tinted,texture --baselines runs/h-now \\
        --settings 512:raw,2048:standardised
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.harness import data  # noqa: E402
from refinekit.downstream import score  # noqa: E402

SETS = ("synthetic", "oracle")


def load(case_data: Path, split: str, classes: list[str], size: int, channels: int):
    folder = data.load_labelled(case_data / split, classes)
    return folder.x.reshape(len(folder.y), size, size, channels), folder.y


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", required=True, help="comma-separated harness cases")
    parser.add_argument("--data", type=Path, default=Path("runs/harness-data"))
    parser.add_argument(
        "--baselines",
        type=Path,
        nargs="+",
        default=[Path("runs/h-now")],
        help="harness output folders; a case's first <dir>/<case>/baseline.json",
    )
    parser.add_argument(
        "--settings",
        default="512:raw,2048:standardised",
        help="comma-separated IMAGES:raw|standardised",
    )
    args = parser.parse_args(argv)
    settings = [
        (int(n), kind == "standardised")
        for n, kind in (s.split(":") for s in args.settings.split(","))
    ]
    head = "| case | judge | raw synthetic | oracle | oracle - raw |"
    print(head + "\n|---|---|---|---|---|", flush=True)
    for case in args.cases.split(","):
        case_data = args.data / case
        meta = json.loads((case_data / "meta.json").read_text())
        shape = (meta["classes"], meta["size"], meta["channels"])
        test_x, test_y = load(case_data, "test", *shape)
        sets = {name: load(case_data, name, *shape) for name in SETS}
        found = [
            d / case / "baseline.json"
            for d in args.baselines
            if (d / case / "baseline.json").exists()
        ]
        if found:
            judged = json.loads(found[0].read_text())["sets"]
            cnn = [judged[name]["accuracy"]["cnn"]["test"] for name in SETS]
            print(
                f"| {case} | independent CNN (harness) | {cnn[0]:.3f} | {cnn[1]:.3f} | {cnn[1] - cnn[0]:+.3f} |",
                flush=True,
            )
        for images, standardised in settings:
            acc = []
            for name in SETS:
                x, y = sets[name]
                pick = score.subset(y, images, 0)
                scored = score.score_training_set(
                    x[pick],
                    y[pick],
                    test_x,
                    test_y,
                    classes=len(meta["classes"]),
                    standardised=standardised,
                )
                acc.append(scored.accuracy)
            label = f"score, {images} images, {'standardised' if standardised else 'raw pixels'}"
            print(
                f"| {case} | {label} | {acc[0]:.3f} | {acc[1]:.3f} | {acc[1] - acc[0]:+.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
