"""Transfer to a new camera with few real images: `train --init-from` against a fresh run.

A source run is trained on one case's synthetic set with all 800 real images of its camera.
The target is a sibling case (the same content renderer seen by another camera, cases.py:
`acquisition-b`, `texture-b`). With K real images of the target (K per class x classes, the
first K per class of its real set, flat: no labels), two runs are trained on the target's
synthetic set: fresh, and `--init-from` the source run, every other flag at its default. Each
is refined and judged like a harness variant (SVM / MLP / CNN trained on the refined set,
tested on the target's 1,000 labelled real test images; SVM retention). Rows for the source
run applied as it is (no fine-tune), raw synthetic, the oracle and the training-free baselines
fitted to the same K real images are scored beside them.

    python benchmarks/harness/transfer.py --source acquisition --target acquisition-b \\
        --out runs/transfer --refiner acquisition --counts 50,10

Every step is recorded under --out and skipped when done, so a stopped experiment resumes.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.harness import baselines, data, judges  # noqa: E402
from benchmarks.harness import run as harness  # noqa: E402
from benchmarks.harness.cases import CASE_INDEX, CASES  # noqa: E402

TRAINING_FREE = ("histogram", "fda", "camera_grid")


def real_subset(case_data: Path, case: str, per_class: int) -> Path:
    """A flat folder of the first `per_class` real images of each class (as data.build numbers
    them: image k has class k mod classes), under the names the full real set gives them."""
    meta = harness.read_json(case_data / "meta.json")
    n_cls = len(meta["classes"])
    folder = case_data / f"real{per_class * n_cls}_transfer"
    if folder.is_dir():
        return folder
    n_real = meta["per_class"]["real"] * n_cls
    names = np.random.default_rng([meta["seed"], CASE_INDEX[case], 99]).permutation(n_real)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for k in range(per_class * n_cls):
        shutil.copy2(case_data / "real" / f"r{names[k]:05d}.png", tmp / f"r{names[k]:05d}.png")
    tmp.rename(folder)
    return folder


def score_refined(out, case_data, classes, evals, rundir, names, shape) -> dict:
    scores = harness.read_json(rundir / "scores.json")
    if scores is None:
        harness.log(out, f"score {rundir.relative_to(out)}")
        syn = data.load_labelled(case_data / "synthetic", classes)
        ref = data.load_labelled(rundir / "refined", classes, syn.names)
        scores = score(ref.x, syn, evals, names, shape)
        harness.write_json(rundir / "scores.json", scores)
    return scores


def score(x, syn, evals, names, shape) -> dict:
    """Train-on-x accuracy per judge; SVM retention when x is aligned with the synthetic set."""
    result: dict = {"accuracy": {}, "retention": {}}
    for judge in names:
        result["accuracy"][judge] = judges.train_on(judge, x, syn.y, evals, shape)
    if syn is not None and x is not syn.x:
        result["retention"]["svm"] = judges.retention("svm", syn.x, x, syn.y, shape)
    return result


def cached(out: Path, name: str, make) -> dict:
    path = out / "sets" / f"{name}.json"
    done = harness.read_json(path)
    if done is None:
        harness.log(out, f"score {name}")
        done = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        harness.write_json(path, done)
    return done


def train_and_refine(out, rundir, command, target_data, lock) -> None:
    rundir.mkdir(parents=True, exist_ok=True)
    harness.train_step(out, target_data, rundir, command, lock)
    harness.refine_step(out, target_data, rundir)


def markdown(rows: dict, names: list[str], raw: dict) -> str:
    lines = [
        "| train on | real images | SVM retention | " + " | ".join(names) + " | train min |",
        "|---" * (len(names) + 4) + "|",
    ]
    for label, row in rows.items():
        gains = []
        for j in names:
            acc = row["accuracy"][j]["test"]
            gains.append(f"{100 * acc:.1f} ({100 * (acc - raw[j]['test']):+.1f})")
        ret = row.get("retention", {}).get("svm")
        retained = f"{100 * ret['refined']:.1f}" if ret else ""
        minutes = f"{row['minutes']:.1f}" if row.get("minutes") is not None else ""
        cells = [label, str(row.get("real", "")), retained, *gains, minutes]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", required=True, choices=sorted(CASES))
    p.add_argument("--target", required=True, choices=sorted(CASES))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--refiner", default="auto", help="train --refiner for every run")
    p.add_argument(
        "--counts",
        default="50,10",
        help="real images of the target per run, multiples of its class count (the first "
        "count / classes of each class)",
    )
    p.add_argument("--judges", default="svm,mlp,cnn")
    p.add_argument("--commit", default="HEAD", help="as run.py's --commit")
    p.add_argument("--data", type=Path, default=None)
    p.add_argument("--scale", default="full", choices=sorted(data.SCALES))
    p.add_argument(
        "--source-run",
        type=Path,
        default=None,
        help="use this run (trained on the source case's 800 real images) instead of training one",
    )
    p.add_argument("--extra-train-args", default="", help="appended to every train command")
    p.add_argument(
        "--init-variant",
        action="append",
        default=[],
        metavar="NAME=ARGS",
        help="a further `--init-from` fine-tune per count with ARGS appended (e.g. "
        "'freezeD2=--freeze-disc-layers 2'); repeatable",
    )
    p.add_argument("--lock", default="/tmp/refinekit-harness.lock")
    args = p.parse_args(argv)
    args.judges = [j for j in args.judges.split(",") if j]
    args.counts = [int(c) for c in args.counts.split(",") if c]
    variants = [v.partition("=") for v in args.init_variant]
    if any(not name or not sep for name, sep, _ in variants):
        p.error("--init-variant: expected NAME=ARGS, e.g. 'freezeD2=--freeze-disc-layers 2'")
    args.init_variant = {name: shlex.split(extra) for name, _, extra in variants}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_root = (args.data or harness.REPO / "runs" / "harness-data").resolve()
    harness.use_source(args.commit, harness.REPO / "runs" / "harness-src")
    harness.log(out, f"refinekit from {harness.SOURCE['src']} (commit {harness.SOURCE['commit']})")
    source_data = data.build(args.source, data_root, scale=args.scale)
    target_data = data.build(args.target, data_root, scale=args.scale)
    meta = harness.read_json(target_data / "meta.json")
    classes, n_cls = meta["classes"], len(meta["classes"])
    shape = (meta["size"], meta["size"], meta["channels"])
    evals = {"test": (lambda f: (f.x, f.y))(data.load_labelled(target_data / "test", classes))}
    syn = data.load_labelled(target_data / "synthetic", classes)
    kind = ["--refiner", args.refiner, *shlex.split(args.extra_train_args)]

    def train(name, real, *extra):
        rundir = out / name
        command = ["train", "--synthetic", str(target_data / "synthetic"), "--real", str(real),
                   "--out", str(rundir / "run"), *kind, *extra]  # fmt: skip
        train_and_refine(out, rundir, command, target_data, args.lock)
        row = score_refined(out, target_data, classes, evals, rundir, args.judges, shape)
        row["minutes"] = harness.read_json(rundir / "train.json")["seconds"] / 60
        return row

    # The source: the sibling case's synthetic set and its camera's 800 real images.
    source = out / "source"
    source.mkdir(parents=True, exist_ok=True)
    if args.source_run is not None:  # an existing run of the same kind (e.g. a harness row's)
        if not (source / "run").exists():
            (source / "run").symlink_to(args.source_run.resolve())
        source_minutes = None
    else:
        command = ["train", "--synthetic", str(source_data / "synthetic"), "--real",
                   str(source_data / "real"), "--out", str(source / "run"), *kind]  # fmt: skip
        harness.train_step(out, source_data, source, command, args.lock)
        source_minutes = harness.read_json(source / "train.json")["seconds"] / 60

    rows: dict[str, dict] = {}
    raw = cached(out, "raw", lambda: score(syn.x, syn, evals, args.judges, shape))
    rows["raw synthetic"] = raw
    oracle = data.load_labelled(target_data / "oracle", classes, syn.names)
    rows["oracle"] = cached(out, "oracle", lambda: score(oracle.x, syn, evals, args.judges, shape))
    # The source run applied to the target's synthetic set as it is: transfer with no fine-tune.
    as_is = out / "source-as-is"
    as_is.mkdir(parents=True, exist_ok=True)
    if not (as_is / "run").is_symlink():
        (as_is / "run").symlink_to(source / "run")
    harness.refine_step(out, target_data, as_is)
    rows[f"source run as it is ({args.source}, 800 real)"] = score_refined(
        out, target_data, classes, evals, as_is, args.judges, shape
    ) | {"minutes": source_minutes}
    for count in args.counts:
        real = real_subset(target_data, args.target, count // n_cls)
        rows[f"fresh, {count} real"] = train(f"fresh{count}", real) | {"real": count}
        rows[f"`--init-from` the source, {count} real"] = train(
            f"init{count}", real, "--init-from", str(source / "run")
        ) | {"real": count}
        for name, extra in args.init_variant.items():
            rows[f"`--init-from` the source, `{shlex.join(extra)}`, {count} real"] = train(
                f"init{count}-{name}", real, "--init-from", str(source / "run"), *extra
            ) | {"real": count}
        real_x = np.stack(
            [np.asarray(Image.open(p), np.float32).reshape(-1) / 255.0
             for p in sorted(real.glob("*.png"))]
        )  # fmt: skip
        for name in TRAINING_FREE:  # fitted only when its scores are not recorded yet
            rows[f"training-free `{name}`, {count} real"] = cached(
                out,
                f"{name}{count}",
                lambda name=name, real_x=real_x: score(
                    baselines.make(name, syn.x, real_x, shape)[0], syn, evals, args.judges, shape
                ),
            ) | {"real": count}
    table = markdown(rows, args.judges, raw["accuracy"])
    header = (
        f"source {args.source} (800 real"
        + (f", {source_minutes:.1f} min" if source_minutes is not None else f": {args.source_run}")
        + f"), target {args.target}, "
        f"--refiner {args.refiner}, commit {harness.SOURCE['commit']}\n\n"
        "Accuracy on the target's 1,000 real test images in % (gain over raw synthetic); "
        "CNN: mean of 3 seeds.\n\n"
    )
    (out / "results.md").write_text(header + table)
    harness.write_json(out / "results.json", rows)
    print(header + table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
