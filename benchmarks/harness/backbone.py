"""The discriminator as a pretrained backbone (TOP-GAN's last step), as an experiment.

A trained run's patch discriminator has seen many unlabelled real images. Its trunk (every
convolution but the last, ReLUs between) turns an image into an (h, w, F) feature map; pooled
as the spatial mean beside a 4x4 grid of cell means, that is a feature vector on which a
logistic-regression head is trained with a few labelled real images per class. Against it:
the same trunk at its random initialisation (what the features are worth without the real
images), logistic regression and an RBF SVM on the pixels, each on the same few images, and
the harness's CNN judge trained on them. Tested on the case's real `test` split.

    PYTHONPATH=src python benchmarks/harness/backbone.py --case acquisition \
        --run runs/h-acq2/acquisition/default/run --per-class 5 --draws 5

The run must have been trained on a real folder without class subfolders: a class-conditional
discriminator saw every real image's label, which would leak into a few-label experiment.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.harness import data, judges  # noqa: E402

GRID = 4  # cells per side of the pooled feature grid


def load_trunk(run: Path, channels: int, trained: bool = True):
    """A function images (N, H, W, C) in [0, 1] -> (N, h, w, F) features from `run`'s best
    checkpoint's discriminator (or, with trained=False, the same layers freshly initialised)."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from refinekit.nn.models import build_models
    from refinekit.training import checkpoint, labels, transfer

    source = transfer.open_source(str(run))
    config = source.config
    plan = labels.plan(config)
    if plan.conditional:
        raise SystemExit(f"--run {run}: its discriminator is class-conditional (saw real labels)")
    _, disc = build_models(config, channels, 0, classes=0)
    graph, params = nnx.split(disc, nnx.Param)
    if trained:
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        target = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device), params
        )
        saved = checkpoint.restore_field(source.path, source.step, ("disc",), target)
        pure = nnx.to_pure_dict(params)
        pure["convs"] = nnx.to_pure_dict(saved)["convs"]
        nnx.replace_by_pure_dict(params, pure)
    disc = nnx.merge(graph, params)

    @jax.jit
    def features(u):
        x = u * 2.0 - 1.0  # the model range
        convs = list(disc.convs)
        done = 0
        for layer in disc.layers:
            if layer[0] == "pool":
                _, k, s = layer
                x = nnx.max_pool(x, (k, k), strides=(s, s), padding="SAME")
                continue
            if done == len(convs) - 1:
                break  # the trunk: every convolution but the last
            x = jax.nn.relu(convs[done](x))
            done += 1
        n, h, w, f = x.shape
        cells = jax.image.resize(x, (n, GRID, GRID, f), method="linear", antialias=True)
        return jnp.concatenate([x.mean(axis=(1, 2)), cells.reshape(n, -1)], axis=1)

    return features, source


def embed(features, x: np.ndarray, shape) -> np.ndarray:
    images = x.reshape(len(x), *shape).astype(np.float32)
    return np.concatenate(
        [np.asarray(features(images[i : i + 256])) for i in range(0, len(images), 256)]
    )


def head_accuracy(train_f, train_y, test_f, test_y) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_f)
    head = LogisticRegression(C=1.0, max_iter=2000)
    head.fit(scaler.transform(train_f), train_y)
    return float(np.mean(head.predict(scaler.transform(test_f)) == test_y))


def draw(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 41])
    return np.sort(
        np.concatenate(
            [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--case", required=True)
    p.add_argument("--run", type=Path, required=True, help="a run trained on flat real images")
    p.add_argument("--data", type=Path, default=Path("runs/harness-data"))
    p.add_argument("--per-class", type=int, default=5)
    p.add_argument("--draws", type=int, default=5, help="labelled subsets drawn from real_labelled")
    p.add_argument("--cnn", action="store_true", help="also the harness's CNN judge (slower)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    root = args.data / args.case
    meta = json.loads((root / "meta.json").read_text())
    classes, shape = meta["classes"], (meta["size"], meta["size"], meta["channels"])
    pool = data.load_labelled(root / "real_labelled", classes)
    test = data.load_labelled(root / "test", classes)
    trained, source = load_trunk(args.run, meta["channels"], trained=True)
    fresh, _ = load_trunk(args.run, meta["channels"], trained=False)
    pool_f = {"trained": embed(trained, pool.x, shape), "fresh": embed(fresh, pool.x, shape)}
    test_f = {"trained": embed(trained, test.x, shape), "fresh": embed(fresh, test.x, shape)}
    rows: dict[str, list[float]] = {
        "trained trunk + logistic head": [],
        "fresh trunk + logistic head": [],
        "pixels + logistic": [],
        "pixels + SVM (harness judge)": [],
    }
    if args.cnn:
        rows["CNN judge from scratch"] = []
    for seed in range(args.draws):
        idx = draw(pool.y, args.per_class, seed)
        y = pool.y[idx]
        rows["trained trunk + logistic head"].append(
            head_accuracy(pool_f["trained"][idx], y, test_f["trained"], test.y)
        )
        rows["fresh trunk + logistic head"].append(
            head_accuracy(pool_f["fresh"][idx], y, test_f["fresh"], test.y)
        )
        rows["pixels + logistic"].append(head_accuracy(pool.x[idx], y, test.x, test.y))
        evals = {"test": (test.x, test.y)}
        rows["pixels + SVM (harness judge)"].append(
            judges.train_on("svm", pool.x[idx], y, evals, shape)["test"]
        )
        if args.cnn:
            rows["CNN judge from scratch"].append(
                judges.train_on("cnn", pool.x[idx], y, evals, shape)["test"]
            )
    print(
        f"{args.case}: {args.per_class} labelled real images per class, {args.draws} draws, "
        f"{len(test.y)} test images; backbone: {source.path} step {source.step} "
        f"({source.config.refiner})"
    )
    for name, accs in rows.items():
        a = np.asarray(accs)
        print(
            f"  {name:32s} {100 * a.mean():5.1f}  (draws {100 * a.min():.1f}-{100 * a.max():.1f})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"case": args.case, "run": str(args.run), "step": source.step, "rows": rows})
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
