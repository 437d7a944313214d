"""The JSON report: its schema, and writing it.

Schema "refinekit.gap-report/2" (all numbers plain JSON numbers; no timestamps, so the same
inputs and seed give a byte-identical file):

    schema        "refinekit.gap-report/2"
    verdict       {outcome: "improved" | "mixed" | "no significant change" | "worse" |
                   "no gap" | null (no refined set), headline: the first line (plain words),
                   lines: [first line, headline numbers, retention, train-on-X, tally],
                   caveats: [text] (what tempers an "improved": a domain classifier still
                   separates refined from real, train-on-refined no better; also in the
                   first line)}
    headline      {metric: "headline" (the key of its row in metrics), name, description,
                   components: [metric keys], synthetic, refined | null, real_floor:
                   {value, low, high}, change, gap_closed: {...} | null, significant,
                   z: {comparison: {component: z-score}}, floor_sd: {component: sd}}
    seed          int: every random choice (split, subsamples, bootstrap, classifiers)
    versions      {refinekit, python, jax, jaxlib, flax, optax, numpy}
    reading       how every set was read: {path, decoder, alpha, mode ("L" | "RGB"), channels,
                  conversion, size [H, W], resize_filter ("antialiased triangle"), value_range}
    sets          {real, synthetic, refined | null}: {path, count, skipped [...], source_sizes,
                  source_channels, bit_depth}; refined also {source: "folder" | "run" | "model",
                  model: {...} | null, paired_with_synthetic: bool} and, from --run/--model,
                  {refiner_channels, refiner_train_size [H, W], refined_at [H, W]};
                  real also {reference_count, holdout_count, split}
    subsampled    {set: count kept} for sets larger than --max-images
    bootstrap     {replicates, confidence, method}
    features      {description, dim, sha256, net_seeds, note}
    classifier    {description, folds, p_value, train_on_x (its classifier
                  in words; null without classes)}
    classes       [names] shared by real and the other sets ([] = no train-on-X metric)
    metrics       list, one per metric, in table order:
                  {key, name, better ("lower" | "higher" | "near 1"), distance (how the value
                   becomes the distance used for gap closed), description,
                   synthetic, refined | null, real_floor: {value, low, high} (vs the real
                     reference half; real_floor is the held-out real half),
                   gap: {value, low, high} = d(S,R) - d(Ra,Rb),
                   change: {...} | null = d(S,R) - d(F,R) (> 0: refinement moved towards real),
                   gap_closed: {...} | null = (d(S,R) - d(F,R)) / (d(S,R) - d(Ra,Rb)),
                   significant: bool | null (change interval excludes 0),
                   outcome: "improved" | "worse" | "no significant change" | "",
                   flags: [text], details: {comparison: {...}} (p-values, per-channel values),
                   refined_gap: {...} | null = d(F,R) - d(Ra,Rb) (low > 0: refined is still
                     significantly further from real than the real floor),
                   applies: bool (false: the metric means nothing for these sets, e.g. colour
                     on a grayscale comparison; the tables leave it out)}
                  label_retention (class subfolders + paired refined set): real_floor and gap
                  null; synthetic = the classifier's held-out synthetic accuracy (ceiling);
                  details.refined = {per_class: {class: {value, low, high, count}}, classes,
                  confusion [[count]] (rows: synthetic label, columns: predicted for the
                  refined image), ceiling, relative (retention / ceiling), measurable, kept,
                  changed: [{index, label, predicted, probability, synthetic, refined}], folds,
                  images}
    charts        {spectrum: {frequency [fraction of Nyquist], log10_power: {set: [...]}},
                   histogram: {bins, edges [...], channels: [{set: [density...]}]}}
    gap_split     what a classifier trained on each set scores on held-out labelled real
                  images (split.py): {measured, reason (when not measured), labelled_real:
                  {source, path, classes, train, test, split}, training_images,
                  left_out_as_test_duplicates, classifier: {seeds, epochs, level}, accuracy:
                  {synthetic, reweighted, reweighted_refined?, real: {accuracy, interval,
                  per_seed, test_images}}, weights: {method, ...} (reweight.py), parts:
                  [{key: total | distribution | refinement | remaining, name, measured,
                  value, low, high, significant, from, to, advice} or {key, name, measured:
                  false, reason, advice}], adds_up (text), not_measured: [{part, reason}]}
"""

from __future__ import annotations

import json
from pathlib import Path

from ..downstream import classifier as downstream_classifier
from ..downstream import score as downstream_score
from ..provenance import package_versions
from . import classifier, features, headline, swd
from .bootstrap import CONFIDENCE, Estimate
from .summary import Row
from .verdict import Verdict

SCHEMA = "refinekit.gap-report/2"


# What computes a report's numbers (the feature hash pins the weights themselves).
REPORT_PACKAGES = ("refinekit", "jax", "jaxlib", "flax", "optax", "numpy")


def versions() -> dict:
    return package_versions(REPORT_PACKAGES)


def _estimate(e: Estimate | None) -> dict | None:
    return None if e is None else e.as_dict()


def metric_entry(row: Row) -> dict:
    spec = row.spec
    return {
        "key": spec.key,
        "name": spec.name,
        "better": spec.better,
        "distance": spec.distance_text,
        "description": spec.description,
        "synthetic": _estimate(row.synthetic),
        "refined": _estimate(row.refined),
        "real_floor": _estimate(row.floor),
        "gap": _estimate(row.gap),
        "change": _estimate(row.change),
        "gap_closed": _estimate(row.gap_closed),
        "significant": row.significant,
        "outcome": row.outcome,
        "flags": list(row.flags),
        "details": row.details,
        "refined_gap": _estimate(row.residual),
        "applies": row.applies,
    }


BOOTSTRAP_METHOD = (
    "point estimate plus the 2.5th/97.5th percentiles of the replicates' deviations from their "
    "median (percentile interval with the bootstrap's bias removed), over multinomial resamples "
    "of every set, shared by all metrics in a replicate; the real reference half is resampled "
    "once per replicate for every comparison; a refined set paired with the synthetic one (by "
    "file name, or by --run) shares its draws; classifier metrics resample held-out predictions "
    "of fixed trained classifiers; density/coverage keep the full-reference radii"
)
FEATURE_NOTE = (
    "random, untrained features are only a proxy for perceptual ones: they track low-level "
    "statistics (noise, blur, texture, colour, layout), not semantics; numbers are comparable "
    "between reports with the same sha256 and image size"
)


def headline_entry(rows: list[Row]) -> dict:
    """The top-level headline object: the verdict's distance, per comparison."""
    row = next(r for r in rows if r.spec.key == headline.KEY)
    details = row.details
    return {
        "metric": headline.KEY,
        "name": row.spec.name,
        "description": headline.DESCRIPTION,
        "components": [
            k
            for k in headline.COMPONENTS
            if k in details.get("real_holdout", {}).get("floor_sd", {})
        ],
        "synthetic": _estimate(row.synthetic),
        "refined": _estimate(row.refined),
        "real_floor": _estimate(row.floor),
        "gap": _estimate(row.gap),
        "change": _estimate(row.change),
        "gap_closed": _estimate(row.gap_closed),
        "significant": row.significant,
        "z": {name: d["components"] for name, d in details.items()},
        "floor_sd": details.get("real_holdout", {}).get("floor_sd", {}),
    }


def build_document(
    *,
    verdict: Verdict,
    seed: int,
    replicates: int,
    reading: dict,
    sets: dict,
    subsampled: dict,
    classes: list[str],
    rows: list[Row],
    charts: dict,
    gap_split: dict | None = None,
) -> dict:
    """The whole JSON report, in the schema above."""
    return {
        "schema": SCHEMA,
        "verdict": verdict.as_dict(),
        "headline": headline_entry(rows),
        "seed": seed,
        "versions": versions(),
        "reading": reading,
        "sets": sets,
        "subsampled": subsampled,
        "bootstrap": {
            "replicates": replicates,
            "confidence": CONFIDENCE,
            "method": BOOTSTRAP_METHOD,
        },
        "features": {
            "description": features.DESCRIPTION,
            "dim": features.FEATURE_DIM,
            "sha256": features.feature_nets().sha256(),
            "net_seeds": list(features.NET_SEEDS),
            "note": FEATURE_NOTE,
            "swd": swd.DESCRIPTION,
        },
        "classifier": {
            "description": classifier.DESCRIPTION,
            "folds": classifier.FOLDS,
            "p_value": "one-sided exact binomial test of the held-out correct count against 1/2",
            "train_on_x": _train_on_x_classifier() if classes else None,
        },
        "classes": classes,
        "metrics": [metric_entry(row) for row in rows],
        "charts": charts,
        "gap_split": gap_split,
    }


def write_json(path: Path, document: dict) -> None:
    """Write the document atomically (never a truncated JSON, even on a full disk)."""
    write_report("--json", Path(path), json.dumps(document, indent=2, allow_nan=False) + "\n")


def write_report(flag: str, path: Path, text: str) -> None:
    """`text` to `path` through a temporary file renamed into place; a failure is one
    RefinekitError naming the file, and leaves neither a partial report nor a temporary file."""
    from ..errors import RefinekitError
    from ..io.atomic import atomic_write

    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise RefinekitError(
            f"{flag} {path}: cannot write the report ({exc.strerror or exc}); nothing was left "
            "in its place"
        ) from exc


def _train_on_x_classifier() -> str:
    """The train-on-X classifier in words: the downstream score's, as configured now."""
    return (
        f"{downstream_classifier.DESCRIPTION}; seeds {list(downstream_score.SEEDS)}, "
        f"a class-balanced subset of at most {downstream_score.MAX_TRAIN} images, "
        f"max({downstream_score.EPOCHS} epochs, {downstream_score.MIN_STEPS} steps); "
        "per test image the fraction of seeds right (train's downstream score)"
    )
