"""The gap split: how much accuracy on real images a classifier loses by training on synthetic
images, and which part of that loss the content mix, refinement and the rest account for.

With labelled real images (class folders named like the synthetic ones: `--real` itself, or
`--real-labelled`), a seeded TEST_FRACTION of each real class is held out as the test set and
a small CNN (refinekit.downstream, SEEDS, at least STEPS training steps) is trained on each of
these sets of `count` images, then tested on it:

    synthetic            a seeded subset of the synthetic images
    reweighted           the synthetic images resampled with reweight.py's weights (fitted
                         against the real training part: its class shares)
    refined              the refined partners of `synthetic` (or a seeded subset)
    reweighted_refined   the refined partners of `reweighted` (or the refined set resampled
                         with its own weights)
    real                 the labelled real images not held out

`count` = the smallest of the sets (at most TRAINING): every set trains on as
many images, so the split measures what an image is worth, not how many there are.

Parts, as accuracy differences on the same test images (acc(X) for "trained on X"):

    total         acc(real) - acc(synthetic)
    distribution  [acc(reweighted) - acc(synthetic) + acc(reweighted_refined) - acc(refined)] / 2
    refinement    [acc(refined) - acc(synthetic) + acc(reweighted_refined) - acc(reweighted)] / 2
    remaining     acc(real) - acc(reweighted_refined): label conventions, poses, backgrounds,
                  whatever neither fix reaches

Each fix is credited with the mean of what it adds before and after the other (both orders:
a look gap can hide the content mix until refinement removes it), so the parts add up to the
total by construction; in the JSON remaining is total - distribution - refinement of the
rounded values. Without a refined set: distribution = acc(reweighted) - acc(synthetic),
remaining = acc(real) - acc(reweighted), refinement not measured. Every interval is
downstream's paired bootstrap over the test images (per-image correct fractions averaged over
seeds), with the same draws for every part, so the parts add up in every draw too. A
synthetic image whose pixels equal a held-out real image's is left out of every training set
(it would score its own label).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..downstream import Downstream, score_training_set
from ..downstream import classifier as downstream_classifier
from ..downstream import score as downstream_score
from ..io.classes import folder_classes
from . import inputs, reweight
from .split_advice import NAMES, advice, not_measured

SEEDS = downstream_score.SEEDS
EPOCHS = downstream_score.EPOCHS
# Its sets are bounded by the labelled real training part (a few hundred images at most in
# practice), so it keeps the step budget of 512 images rather than the candidates' MAX_TRAIN.
TRAINING = 512
# Training steps at least: downstream's at its full training set. An epoch of a small set is
# one batch, and EPOCHS such steps leave the CNN answering the most common class.
STEPS = EPOCHS * (TRAINING // downstream_classifier.BATCH)
TEST_FRACTION = 0.5  # of each labelled real class, held out as the test set
MIN_PER_CLASS = 4  # labelled real images per class: some to train on, some to test on
PARTS = ("distribution", "refinement", "remaining")
NO_FOLDERS = "no class folders (every image in a top-level subfolder, at least two)"
ADDS_UP = (
    "distribution + refinement + remaining = total by construction: each fix is credited with "
    "the mean of what it adds before and after the other, and remaining is what both fixes "
    "leave (total - distribution - refinement)"
)


@dataclass
class Labelled:
    """Images and their class ids over the shared classes."""

    images: np.ndarray
    labels: np.ndarray

    def take(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.images[index], self.labels[index]


def gap_split(
    syn: inputs.ImageSet,
    labelled_real: inputs.ImageSet | None,
    refined: inputs.ImageSet | None,
    paired: bool,
    seed: int,
    *,
    source: str,
    stage=None,
) -> dict:
    """The "gap_split" section of the report (docs/gap-report.md); `source` names where the
    labelled real images came from ("--real" or "--real-labelled")."""
    why = _unmeasurable(syn, labelled_real, source)
    if why is not None:
        return not_measured(why, refined is not None)
    assert labelled_real is not None
    classes = inputs.shared_classes(labelled_real.class_names(), [syn.class_names()])
    real = _labelled(labelled_real, labelled_real.names, classes)
    train_idx, test_idx = _split(real.labels, seed)
    test, real_train = Labelled(*real.take(test_idx)), Labelled(*real.take(train_idx))
    keep = _not_in(syn.images, test.images)
    synthetic = _labelled(syn, syn.names, classes, keep)
    ref = None
    if refined is not None:
        ref_keep = keep if paired else _not_in(refined.images, test.images)
        ref = _labelled(refined, syn.names if paired else refined.names, classes, ref_keep)
    count = int(min(len(real_train.labels), len(synthetic.labels), TRAINING))
    if ref is not None and not paired:
        count = min(count, len(ref.labels))
    if count < 2 * len(classes):
        return not_measured(
            f"{count} images to train each classifier on (after leaving out synthetic copies "
            "of held-out real images); the split needs at least two per class",
            refined is not None,
        )
    sets, weights = _training_sets(synthetic, real_train, ref, paired, classes, count, seed)
    advance = stage("gap split: classifiers on real", len(sets)) if stage else None
    epochs = epochs_for(count)
    scores: dict[str, Downstream] = {}
    for name, (x, y) in sets.items():
        scores[name] = score_training_set(
            x, y, test.images, test.labels, classes=len(classes), seeds=SEEDS, epochs=epochs
        )
        if advance is not None:
            advance(1)
    parts = _parts(scores, refined is not None)
    majority = float(np.bincount(test.labels).max() / len(test.labels))
    return {
        "measured": True,
        "labelled_real": {
            "source": source,
            "path": labelled_real.root,
            "classes": classes,
            "train": len(real_train.labels),
            "test": len(test.labels),
            "split": f"seeded, stratified by class; {TEST_FRACTION:.0%} of each class held out",
        },
        "training_images": count,
        "left_out_as_test_duplicates": int((~keep).sum()),
        "classifier": {"seeds": list(SEEDS), "epochs": epochs, "level": downstream_score.LEVEL},
        "majority": round(majority, 4),
        "caution": caution(scores["real"], majority),
        "accuracy": {name: s.to_dict() for name, s in scores.items()},
        "weights": weights.to_dict(),
        "parts": [dict(p, advice=advice(p, syn.root, labelled_real.root)) for p in parts],
        "adds_up": ADDS_UP,
        "not_measured": [
            {"part": p["key"], "reason": p["reason"]} for p in parts if not p["measured"]
        ],
    }


def _training_sets(synthetic, real_train, ref, paired, classes, count, seed):
    """{set name: (images, labels)}, `count` images each, and the synthetic set's weights."""
    rng = np.random.default_rng([seed, 47])
    real_pick = np.sort(rng.permutation(len(real_train.labels))[:count])
    syn_pick = np.sort(rng.permutation(len(synthetic.labels))[:count])
    real_names = [classes[c] for c in real_train.labels]
    names = [classes[c] for c in synthetic.labels]
    weights = reweight.fit_weights(
        synthetic.images, real_train.images, names, real_names, seed=seed
    )
    rw_pick = reweight.resample(weights.weights, count, seed)
    sets = {"synthetic": synthetic.take(syn_pick), "reweighted": synthetic.take(rw_pick)}
    if ref is not None:
        plain, pick = syn_pick, rw_pick
        if not paired:  # no partners: the refined set's own subset and weights
            ref_names = [classes[c] for c in ref.labels]
            ref_w = reweight.fit_weights(
                ref.images, real_train.images, ref_names, real_names, seed=seed
            )
            plain = np.sort(rng.permutation(len(ref.labels))[:count])
            pick = reweight.resample(ref_w.weights, count, seed)
        sets["refined"] = ref.take(plain)
        sets["reweighted_refined"] = ref.take(pick)
    sets["real"] = real_train.take(real_pick)
    return sets, weights


def caution(real: Downstream, majority: float) -> str | None:
    """Why the split may read no gap: the classifier trained on real images is no better than
    answering the most common class."""
    if real.low > majority:
        return None
    return (
        f"the classifier trained on real images ({real.accuracy:.0%}) is not better than always "
        f"answering the most common class ({majority:.0%}): too few labelled real images, or "
        "classes a small CNN cannot tell apart, so the split may miss a gap"
    )


def epochs_for(count: int) -> int:
    """EPOCHS, or more where an epoch of `count` images is too few steps to reach STEPS."""
    return max(EPOCHS, downstream_score.epochs_for(count, STEPS))


def check_layout(real_labelled: Path, synthetic: Path) -> None:
    """Before any image is read: --real-labelled and --synthetic have class folders (names
    only, io/classes.py) with at least two names in common; else a DataError (exit 2)."""
    from ..errors import DataError
    from ..io.files import list_images

    def classes(root: Path, flag: str) -> list[str] | None:
        base = root if root.is_dir() else root.parent
        return folder_classes([p.relative_to(base).as_posix() for p in list_images(root, flag)])

    labelled = classes(Path(real_labelled), "--real-labelled")
    if labelled is None:
        raise DataError(f"--real-labelled {real_labelled}: {NO_FOLDERS}")
    syn = classes(Path(synthetic), "--synthetic")
    if syn is None:
        raise DataError(f"--real-labelled {real_labelled} needs class folders in --synthetic too")
    if len(set(labelled) & set(syn)) < 2:
        raise DataError(
            f"--real-labelled {real_labelled}: fewer than two class folder names in common with "
            f"--synthetic ({', '.join(sorted(set(labelled))[:4])} vs "
            f"{', '.join(sorted(set(syn))[:4])})"
        )


def read_labelled(path, syn, channels, size, strict, limit, seed) -> inputs.ImageSet:
    """--real-labelled through the common reading path, subsampled like the other sets; a
    DataError (exit 2) at once when the split cannot be made with it."""
    from ..errors import DataError

    image_set = inputs.read_set("real labelled", path, "--real-labelled", channels, size, strict)
    keep = inputs.subsample(len(image_set), limit, seed, 4)
    image_set = image_set if keep is None else image_set.take(keep)
    why = _unmeasurable(syn, image_set, "--real-labelled")
    if why is not None:
        raise DataError(f"--real-labelled {path}: {why}")
    return image_set


def _unmeasurable(syn, labelled_real, source) -> str | None:
    if syn.class_names() is None:
        return (
            "the synthetic set has no class folders (every image in a top-level subfolder, at "
            "least two), so no classifier can be trained on it"
        )
    if labelled_real is None or labelled_real.class_names() is None:
        if source == "--real-labelled":
            return NO_FOLDERS
        return (
            "no labelled real images: --real has no class folders; pass --real-labelled DIR "
            "with class folders named like the synthetic ones"
        )
    classes = inputs.shared_classes(labelled_real.class_names(), [syn.class_names()])
    if not classes:
        return (
            f"{source} and --synthetic share fewer than two class folder names, so a classifier "
            "trained on one cannot be tested on the other"
        )
    names = np.array(labelled_real.class_names())
    small = [c for c in classes if (names == c).sum() < MIN_PER_CLASS]
    if small:
        return (
            f"{source}: fewer than {MIN_PER_CLASS} labelled real images in class "
            f"{', '.join(small[:3])}; some are needed to train on and some to test on"
        )
    return None


def _labelled(image_set, names, classes, keep=None) -> Labelled:
    """The images in `classes` (by the class folders of `names`) where `keep` is true."""
    ids = inputs.label_ids(folder_classes(names), classes)
    assert ids is not None  # every caller checked the class folders
    mask = ids >= 0 if keep is None else (ids >= 0) & keep
    index = np.flatnonzero(mask)
    return Labelled(image_set.images[index], ids[index])


def _split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) indices: TEST_FRACTION of each class held out (seeded), at least one of
    each class on each side."""
    rng = np.random.default_rng([seed, 53])
    train, test = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        shuffled = members[rng.permutation(len(members))]
        held = min(max(int(round(TEST_FRACTION * len(members))), 1), len(members) - 1)
        test.append(shuffled[:held])
        train.append(shuffled[held:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _digest(image: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(image).tobytes(), digest_size=16).digest()


def _not_in(images: np.ndarray, test: np.ndarray) -> np.ndarray:
    """True for each image whose pixels equal no test image's."""
    held = {_digest(t) for t in test}
    return np.array([_digest(im) not in held for im in images], dtype=bool)


def combine(terms: dict[str, float], scores: dict[str, Downstream]) -> tuple[float, float, float]:
    """sum(coefficient * accuracy) over the named scores, and its LEVEL paired bootstrap
    interval over the test images (downstream's: BOOTSTRAP draws of the test images, the same
    draws for every call; two terms +1/-1 give downstream.better_than's interval)."""
    rows = np.stack([c * scores[name].correct for name, c in terms.items()])
    values = rows.sum(axis=0)
    rng = np.random.default_rng([1, 31])
    draws = rng.integers(0, len(values), size=(downstream_score.BOOTSTRAP, len(values)))
    means = values[draws].mean(axis=1)
    tail = (1.0 - downstream_score.LEVEL) / 2.0
    point = float(sum(c * scores[name].accuracy for name, c in terms.items()))
    return point, float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def _part(key: str, terms: dict[str, float], scores: dict[str, Downstream], **extra) -> dict:
    value, low, high = combine(terms, scores)
    return {
        "key": key,
        "name": NAMES[key],
        "measured": True,
        "value": round(value, 4),
        "low": round(low, 4),
        "high": round(high, 4),
        "significant": bool(low > 0 or high < 0),
        "terms": terms,
        **extra,
    }


def _alone_and_after(first: float, second: float) -> dict:
    return {"alone": round(first, 4), "after_the_other": round(second, 4)}


def _parts(scores: dict[str, Downstream], has_refined: bool) -> list[dict]:
    acc = {name: s.accuracy for name, s in scores.items()}
    total = _part("total", {"real": 1.0, "synthetic": -1.0}, scores)
    if has_refined:
        half = 0.5
        distribution = _part(
            "distribution",
            {"reweighted": half, "synthetic": -half, "reweighted_refined": half, "refined": -half},
            scores,
            **_alone_and_after(
                acc["reweighted"] - acc["synthetic"], acc["reweighted_refined"] - acc["refined"]
            ),
        )
        refinement = _part(
            "refinement",
            {"refined": half, "synthetic": -half, "reweighted_refined": half, "reweighted": -half},
            scores,
            **_alone_and_after(
                acc["refined"] - acc["synthetic"], acc["reweighted_refined"] - acc["reweighted"]
            ),
        )
        last = "reweighted_refined"
    else:
        distribution = _part("distribution", {"reweighted": 1.0, "synthetic": -1.0}, scores)
        refinement = {
            "key": "refinement",
            "name": NAMES["refinement"],
            "measured": False,
            "reason": "no refined set: pass --refined DIR, --run RUN or --model FILE",
        }
        last = "reweighted"
    remaining = _part("remaining", {"real": 1.0, last: -1.0}, scores)
    # Exactly total - the others, in the numbers the JSON shows (its interval is its own).
    others = distribution["value"] + (refinement["value"] if refinement["measured"] else 0.0)
    remaining["value"] = round(total["value"] - others, 4)
    return [total, distribution, refinement, remaining]
