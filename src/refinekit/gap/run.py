"""`gap_report`: the library function behind `refinekit gap-report` (usable as an API).

Stages: read the sets (one reading path, one size and mode), refine on the fly with --run,
split real into a reference half and a held-out half (the floor), draw the bootstrap
resamples, extract features and image statistics, compute every metric against the reference
half, summarise, and write JSON / HTML on request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RefinekitError, UsageError
from ..events import Finished, OnEvent, Started, stages
from ..io.pixels import unit_to_uint8
from . import bootstrap, compute, features, frechet, inputs, split, summary, swd
from .checks import check_arguments
from .parts import charts as _charts
from .parts import describe_sets as _describe_sets
from .parts import label_retention as _label_retention
from .parts import reading as _reading
from .parts import samples as _samples
from .report_json import build_document, write_json
from .split_advice import verdict_line
from .verdict import decide, with_line

REFINE_CHUNK = 256


@dataclass
class GapReport:
    """What gap_report measured: the JSON document, table rows, verdict and sample images."""

    document: dict
    rows: list[summary.Row]
    verdict: str
    samples: dict[str, np.ndarray] = field(default_factory=dict)


def gap_report(
    real: Path,
    synthetic: Path,
    refined: Path | None = None,
    run: Path | None = None,
    step: int | str | None = None,
    model: Path | None = None,
    json_path: Path | None = None,
    html_path: Path | None = None,
    size: tuple[int, int] | None = None,
    channels: int | None = None,
    seed: int = 0,
    replicates: int = 200,
    batch_size: int = 64,
    max_images: int | None = 10_000,
    strict: bool = False,
    save_refined: Path | None = None,
    on_event: OnEvent | None = None,
    real_labelled: Path | None = None,
) -> GapReport:
    """Measure the synthetic-to-real gap, and how much of it refinement closed.

    real, synthetic: image folders (or single files). refined: a folder of refined images;
    or run (with step) / model: refine the synthetic set on the fly with that refiner.
    size: common (H, W) (default: the real set's, when all real images share one).
    channels: 1 or 3 (default: the synthetic set's). replicates: bootstrap resamples.
    batch_size: images per feature-network (and refiner) batch; it does not change the
    numbers. max_images: larger sets are subsampled (seeded) to this many.
    on_event: receives refinekit.events (docs/api.md): Started, then per stage a Stage and
    Progress events whose `done` reaches the stage's `total`, then Finished.
    real_labelled: labelled real images (class folders named like the synthetic ones) for the
    gap split (split.py), when --real has none.
    Raises UsageError/DataError for bad arguments or inputs, RefinekitError for a failure
    (e.g. a non-finite metric).
    """
    check_arguments(
        real,
        synthetic,
        refined,
        run,
        step,
        model,
        json_path,
        html_path,
        channels,
        replicates,
        batch_size,
        max_images,
        save_refined,
        real_labelled,
    )
    if on_event is not None:
        given = {
            "real": real,
            "synthetic": synthetic,
            "refined": refined,
            "run": run,
            "model": model,
        }
        on_event(Started("gap-report", None, 0, {k: str(v) for k, v in given.items() if v}))
    stage = stages(on_event, "gap-report")  # the stages' cheap start(name, total) -> advance(n)
    sets = _read_sets(
        Path(real),
        Path(synthetic),
        Path(refined) if refined else None,
        size,
        channels,
        strict,
        stage,
    )
    sets.subsample(max_images, seed)
    labelled = sets.real
    if real_labelled is not None:  # read before any metric, so a bad folder fails fast
        labelled = split.read_labelled(
            Path(real_labelled), sets.synthetic, sets.channels, sets.size, strict, max_images, seed
        )
    if run is not None or model is not None:
        sets.refined, sets.refined_info = _refine_on_the_fly(
            sets.synthetic, run, step, model, batch_size, sets.channels, stage
        )
        sets.paired = True
        if save_refined is not None:
            from ..io.guard import creatable  # created as checked: resolved when it holds ".."

            _save(sets.refined, creatable(Path(save_refined)))
    syn, real_set, ref_set = sets.synthetic, sets.real, sets.refined

    index_a, index_b = inputs.split_real(len(real_set), real_set.class_names(), seed)
    real_a, real_b = real_set.take(index_a), real_set.take(index_b)
    # Classes shared by real and synthetic; a refined set without them just has no such row.
    classes = inputs.shared_classes(real_set.class_names(), [syn.class_names()])

    named = _resamples(real_a, real_b, syn, ref_set, sets.paired, replicates, seed)
    basis = swd.fit_basis(real_a.images)
    prepared = _prepare(named, classes, batch_size, stage, basis)
    reference = prepared.pop("reference")
    computed = compute.compute_metrics(reference, prepared, seed, len(classes), stage, basis=basis)
    changed = _label_retention(syn, ref_set, sets.paired, prepared, seed, computed, stage)
    rows = summary.summarise(computed)
    sizes = {
        "real reference": len(reference),
        **{k.replace("_", " "): len(v) for k, v in prepared.items()},
    }
    small = frechet.small_set_flag(sizes, features.FEATURE_DIM)
    for row in rows:
        if row.spec.key == "frechet" and small:
            row.flags.append(small)
    source = "--real-labelled" if real_labelled is not None else "--real"
    split_section = split.gap_split(
        syn, labelled, ref_set, sets.paired, seed, source=source, stage=stage
    )
    verdict = with_line(decide(rows), verdict_line(split_section))

    all_sets = {"real": real_set, "synthetic": syn, "refined": ref_set}
    document = build_document(
        verdict=verdict,
        seed=seed,
        replicates=replicates,
        reading=_reading(sets.size, sets.channels, all_sets),
        sets=_describe_sets(all_sets, real_a, real_b, sets.refined_info),
        subsampled=sets.subsampled,
        classes=classes,
        rows=rows,
        charts=_charts(reference, prepared),
        gap_split=split_section,
    )
    samples = _samples(real_a, syn, ref_set)
    if changed is not None and len(changed):
        assert ref_set is not None  # label_retention returns None without a refined set
        samples["changed_synthetic"] = syn.images[changed]
        samples["changed_refined"] = ref_set.images[changed]
    report = GapReport(document, rows, verdict.text, samples)
    if json_path is not None:
        write_json(Path(json_path), document)
    if html_path is not None:
        from .report_html import write_html

        write_html(Path(html_path), report)
    if on_event is not None:
        on_event(Finished("gap-report", {"verdict": verdict.text, "outcome": verdict.outcome}))
    return report


@dataclass
class _Sets:
    """The decoded sets, in canonical order, and how they were read."""

    synthetic: inputs.ImageSet
    real: inputs.ImageSet
    refined: inputs.ImageSet | None
    size: tuple[int, int]
    channels: int
    paired: bool = False
    refined_info: dict | None = None
    subsampled: dict = field(default_factory=dict)

    def subsample(self, limit: int | None, seed: int) -> None:
        """--max-images: seeded subsets; a paired refined set keeps its synthetic partners."""
        keep = inputs.subsample(len(self.synthetic), limit, seed, 1)
        if keep is not None:
            self.synthetic = self.synthetic.take(keep)
            self.subsampled["synthetic"] = len(keep)
            if self.paired:
                assert self.refined is not None  # only a refined set is paired
                self.refined = self.refined.take(keep)
        keep = inputs.subsample(len(self.real), limit, seed, 2)
        if keep is not None:
            self.real = self.real.take(keep)
            self.subsampled["real"] = len(keep)
        if self.refined is not None and not self.paired:
            keep = inputs.subsample(len(self.refined), limit, seed, 3)
            if keep is not None:
                self.refined = self.refined.take(keep)
                self.subsampled["refined"] = len(keep)


def _read_sets(real, synthetic, refined, size, channels, strict, stage) -> _Sets:
    """Every set through the one reading path, at one size and one channel count."""
    advance = stage("read images", 3 if refined is not None else 2)
    size = inputs.common_size(real, tuple(size) if size else None)
    syn = inputs.read_set("synthetic", synthetic, "--synthetic", channels, size, strict)
    channels = channels or syn.images.shape[-1]  # follow the synthetic set
    advance(1)
    real_set = inputs.read_set("real", real, "--real", channels, size, strict)
    advance(1)
    inputs.check_count(syn, "--synthetic")
    inputs.check_count(real_set, "--real", 2 * inputs.MIN_IMAGES)
    sets = _Sets(syn, real_set, None, size, channels)
    if refined is not None:
        ref_set = inputs.read_set("refined", refined, "--refined", channels, size, strict)
        inputs.check_count(ref_set, "--refined")
        order = inputs.pair_by_name(syn, ref_set)
        sets.paired = order is not None
        sets.refined = ref_set.take(order) if order is not None else ref_set
        sets.refined_info = {
            "source": "folder",
            "model": None,
            "paired_with_synthetic": sets.paired,
        }
        advance(1)
    return sets


def _resamples(real_a, real_b, syn, ref_set, paired, replicates, seed) -> dict:
    """name -> (set, bootstrap counts); a paired refined set shares the synthetic draws."""
    rng = np.random.default_rng([seed, 17])
    counts_s = bootstrap.count_matrix(len(syn), replicates, rng)
    counts_a = bootstrap.count_matrix(len(real_a), replicates, rng)
    counts_b = bootstrap.count_matrix(len(real_b), replicates, rng)
    named = {
        "reference": (real_a, counts_a),
        summary.SYNTHETIC: (syn, counts_s),
        summary.FLOOR: (real_b, counts_b),
    }
    if ref_set is not None:
        counts_f = counts_s if paired else bootstrap.count_matrix(len(ref_set), replicates, rng)
        named[summary.REFINED] = (ref_set, counts_f)
    return named


def _prepare(named, classes, batch_size, stage, basis) -> dict[str, compute.Prepared]:
    """Features (standardised with the real set's statistics) and image statistics per set."""
    advance = stage("features and image statistics", sum(len(s) for s, _ in named.values()))
    prepared = {}
    for name, (image_set, counts) in named.items():
        done = [0]

        def on_batch(n, done=done):
            advance(n - done[0])
            done[0] = n

        labels = inputs.label_ids(image_set.class_names(), classes)
        prepared[name] = compute.prepare(
            image_set.images, counts, labels, batch_size, on_batch, basis=basis
        )
    mean, std = features.standardiser(
        np.concatenate([prepared["reference"].features, prepared[summary.FLOOR].features])
    )
    compute.standardise(list(prepared.values()), mean, std)
    return prepared


def _refine_on_the_fly(syn, run, step, model, batch_size, channels, stage):
    """Refine the synthetic set with a trained refiner (at the common size); nothing is written.

    Returns the refined set (paired with the synthetic one) and what the JSON says about it.
    """
    from ..inference.refiner import load_refiner
    from ..io.pixels import convert_channels

    refiner = load_refiner(
        run=Path(run) if run else None,
        step=step,
        model=Path(model) if model else None,
        batch_size=batch_size,
    )
    source = syn.images
    if refiner.channels != source.shape[-1]:
        source = convert_channels(source, refiner.channels)
    advance = stage("refine synthetic", len(source))
    chunks = []
    for start in range(0, len(source), REFINE_CHUNK):
        chunk = np.asarray(refiner(source[start : start + REFINE_CHUNK]), np.float32)
        chunks.append(chunk)
        advance(len(chunk))
    out = np.concatenate(chunks)
    if out.shape != source.shape:
        raise RefinekitError(
            f"the refiner returned images of shape {out.shape[1:]} for {source.shape[1:]}"
        )
    if not np.isfinite(out).all():
        raise RefinekitError(
            "the refiner produced non-finite pixels (NaN/inf); the checkpoint may be diverged"
        )
    out = np.clip(out, 0.0, 1.0)
    if out.shape[-1] != channels:
        out = convert_channels(out, channels)
    refined = inputs.ImageSet(
        "refined",
        out,
        list(syn.names),
        None,
        [],
        syn.source_sizes,
        [refiner.channels],
        syn.bit_depth,
    )
    info = {
        "source": "run" if run is not None else "model",
        "model": dict(refiner.model_id),
        "paired_with_synthetic": True,
        "refiner_channels": int(refiner.channels),
        "refiner_train_size": [int(v) for v in refiner.train_size],
        "refined_at": [int(v) for v in source.shape[1:3]],
    }
    return refined, info


def _save(images: inputs.ImageSet, folder: Path) -> None:
    """Write refined images as 8-bit PNGs under their synthetic relative names, each atomically
    (a full disk leaves no partial file: the error names the file)."""
    from ..errors import RefinekitError
    from ..io.atomic import atomic_write
    from ..io.encode import encode_image

    targets: dict[Path, str] = {}
    for name in images.names:
        target = folder / (name.rsplit(".", 1)[0] + ".png")
        if target in targets:
            raise UsageError(
                f"--save-refined {folder}: {targets[target]} and {name} would both be saved as "
                f"{target.name}; rename one of them"
            )
        targets[target] = name
    for target, image in zip(targets, images.images, strict=True):
        pixels = unit_to_uint8(image)
        try:
            atomic_write(target, encode_image(pixels, ".png"))
        except OSError as exc:
            raise RefinekitError(
                f"--save-refined {target}: cannot write it ({exc.strerror or exc}); "
                "no partial file is left"
            ) from exc
