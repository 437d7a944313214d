"""Every metric of every compared set against the real reference half, per bootstrap replicate.

`prepare` turns a set's images into what the metrics need (features, spectra, pixel
statistics, classifier inputs) once; `compute_metrics` then compares any number of prepared
sets with one reference. The report compares synthetic, refined and the held-out real half;
tests compare disturbance levels the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from ..downstream import classifier as downstream_classifier
from ..downstream import score as downstream_score
from ..events import StartStage, stages
from . import (
    classifier,
    colour,
    density,
    domain,
    frechet,
    headline,
    histogram,
    kid,
    retention,
    spectrum,
    swd,
)
from .features import extract_features


@dataclass
class Prepared:
    """One image set, ready for the metrics. Row 0 of `counts` is all ones (point estimate)."""

    features: np.ndarray  # (n, d) standardised random-net features
    spectra: np.ndarray  # (n, rings) radially averaged power
    oriented: np.ndarray  # (n, 3 * sectors) power per band and orientation
    pixels: histogram.PixelStats
    small: np.ndarray  # (n, h, w, C) domain classifier inputs
    counts: np.ndarray  # (1 + replicates, n)
    labels: np.ndarray | None = None  # class id per image, -1 outside the shared classes
    judged: np.ndarray | None = None  # labelled sets: the images at the downstream CNN's view
    patches: np.ndarray | None = None  # (n, levels * projections, bins) uint8, swd.py
    colours: colour.ColourStats | None = None

    def __len__(self) -> int:
        return len(self.features)


def prepare(
    images: np.ndarray,
    counts: np.ndarray,
    labels: np.ndarray | None = None,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
    basis: swd.Basis | None = None,
) -> Prepared:
    """Raw features (standardise them afterwards with `standardise`) and image statistics.

    basis: the sliced-Wasserstein bins, fitted on the reference (`swd.fit_basis`); without it
    the set has no patch histograms and the swd metric (and the headline) is skipped.
    """
    rings, oriented = spectrum.image_power(images)
    labelled = labels is not None and bool((labels >= 0).any())
    return Prepared(
        features=extract_features(images, batch_size, on_batch),
        spectra=rings,
        oriented=oriented,
        pixels=histogram.pixel_stats(images),
        small=classifier.classifier_inputs(images),
        counts=counts,
        labels=labels,
        patches=None if basis is None else swd.image_histograms(images, basis),
        colours=colour.colour_stats(images),
        judged=downstream_classifier.prepare(images) if labelled else None,
    )


def standardise(sets: list[Prepared], mean: np.ndarray, std: np.ndarray) -> None:
    for s in sets:
        s.features = (s.features - mean) / std


@dataclass
class Computed:
    """values[metric][set] = (1 + replicates,) array; details[metric][set] = extra numbers."""

    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    details: dict[str, dict[str, dict]] = field(default_factory=dict)

    def put(self, metric: str, name: str, values: np.ndarray, **details) -> None:
        self.values.setdefault(metric, {})[name] = np.asarray(values, np.float64)
        if details:
            self.details.setdefault(metric, {})[name] = details


_NO_STAGES = stages(None, "gap-report")  # start(name, total) -> advance(n) that does nothing


def compute_metrics(
    reference: Prepared,
    candidates: dict[str, Prepared],
    seed: int,
    classes: int = 0,
    stage: StartStage = _NO_STAGES,
    floor: str | None = "real_holdout",
    basis: swd.Basis | None = None,
    headline_only: bool = False,
    domain_sets: Collection[str] | None = None,
) -> Computed:
    """Compare every candidate with the reference.

    classes: number of shared class labels (0: skip train-on-X, test-on-real).
    stage(name, total) starts a progress stage and returns its advance(n) callback
    (refinekit.events.stages makes one that emits Stage and Progress events).
    floor: the candidate that is the held-out real half; the headline is standardised by it.
    basis: the swd bins the sets were prepared with (their patch histograms need it).
    headline_only: only the headline and its components (the fast scoring API, tests).
    domain_sets: the candidates the domain classifier is trained for (default: all); it is
    the costliest metric, and a test of the others need not pay for it on every set.
    """
    out = Computed()
    _distribution_metrics(reference, candidates, out, stage, headline_only)
    _image_statistics(reference, candidates, out)
    if basis is not None and reference.patches is not None:
        ref_cdf = swd.set_cdfs(reference.patches, reference.counts)
        for name, x in candidates.items():
            assert x.patches is not None  # every set is prepared with the reference's basis
            out.put("swd", name, swd.swd(swd.set_cdfs(x.patches, x.counts), ref_cdf, basis))
    if floor is not None and floor in candidates:
        values, details = headline.combine(out.values, floor)
        for name, v in values.items():
            out.put(headline.KEY, name, v, **details[name])
    if headline_only:
        return out
    judged = {k: v for k, v in candidates.items() if domain_sets is None or k in domain_sets}
    _domain_classifier(reference, judged, seed, out, stage)
    if classes >= 2:
        _train_on_x(reference, candidates, seed, classes, out, stage)
    return out


def _distribution_metrics(
    ref: Prepared, candidates: dict[str, Prepared], out: Computed, stage, kid_only: bool = False
) -> None:
    advance = stage("KID, Frechet, density/coverage", 3 * len(candidates) + 2)
    ref_within = kid.within_term(ref.features, ref.counts)
    if kid_only:
        for name, x in candidates.items():
            out.put(
                "kid", name, kid.kid(x.features, ref.features, x.counts, ref.counts, ref_within)
            )
        return
    ref_mean, ref_cov = frechet.weighted_moments(ref.features, ref.counts)
    radii = density.neighbour_radii(ref.features)
    advance(2)
    for name, x in candidates.items():
        out.put("kid", name, kid.kid(x.features, ref.features, x.counts, ref.counts, ref_within))
        advance(1)
        mean, cov = frechet.weighted_moments(x.features, x.counts)
        out.put("frechet", name, frechet.frechet_distance(mean, cov, ref_mean, ref_cov))
        advance(1)
        dens, cover = density.density_coverage(
            ref.features, radii, x.features, ref.counts, x.counts
        )
        out.put("density", name, dens)
        out.put("coverage", name, cover)
        advance(1)


def _image_statistics(ref: Prepared, candidates: dict[str, Prepared], out: Computed) -> None:
    ref_log = spectrum.set_log_spectrum(ref.spectra, ref.counts)
    ref_cells = spectrum.set_log_spectrum(ref.oriented, ref.counts)
    ref_hist = histogram.set_histograms(ref.pixels, ref.counts)
    ref_mean, ref_std = histogram.set_moments(ref.pixels, ref.counts)
    ref_colour = None if ref.colours is None else colour.set_moments(ref.colours, ref.counts)
    for name, x in candidates.items():
        bands = spectrum.band_distances(spectrum.set_log_spectrum(x.spectra, x.counts), ref_log)
        for band, values in bands.items():
            out.put(f"spectrum_{band}", name, values)
        cells = spectrum.set_log_spectrum(x.oriented, x.counts)
        out.put("spectrum_orientation", name, spectrum.oriented_distance(cells, ref_cells))
        w1 = histogram.wasserstein1(
            histogram.set_histograms(x.pixels, x.counts), ref_hist
        )  # (R, C)
        mean, std = histogram.set_moments(x.pixels, x.counts)
        out.put("intensity_w1", name, w1.mean(axis=1), per_channel=w1)
        out.put(
            "mean_shift", name, np.abs(mean - ref_mean).mean(axis=1), per_channel=mean - ref_mean
        )
        out.put("std_shift", name, np.abs(std - ref_std).mean(axis=1), per_channel=std - ref_std)
        if x.colours is not None and ref_colour is not None:
            out.put(
                "colour",
                name,
                colour.colour_distance(*colour.set_moments(x.colours, x.counts), *ref_colour),
            )


def _domain_classifier(
    ref: Prepared, candidates: dict[str, Prepared], seed: int, out: Computed, stage
) -> None:
    total = sum(classifier.domain_steps(len(x), len(ref)) for x in candidates.values())
    advance = stage("domain classifier", total)
    for name, x in candidates.items():
        held = classifier.domain_scores(x.small, ref.small, seed, on_step=advance)
        w_x = x.counts[:, held.index_x]
        w_ref = ref.counts[:, held.index_ref]
        accuracy = domain.balanced_accuracy(held.scores_x, held.scores_ref, w_x, w_ref)
        correct = int(
            np.floor(
                domain.correct_fraction(held.scores_x, True).sum()
                + domain.correct_fraction(held.scores_ref, False).sum()
            )
        )
        total_predictions = len(held.scores_x) + len(held.scores_ref)
        p_value = domain.binomial_p_value(correct, total_predictions)
        out.put(
            "classifier_accuracy",
            name,
            accuracy,
            p_value=p_value,
            held_out=total_predictions,
            correct=correct,
        )
        out.put(
            "classifier_auc", name, domain.weighted_auc(held.scores_x, held.scores_ref, w_x, w_ref)
        )
        out.put("proxy_a_distance", name, domain.proxy_a_distance(accuracy))


def _train_on_x(
    ref: Prepared, candidates: dict[str, Prepared], seed: int, classes: int, out: Computed, stage
) -> None:
    """Train on each labelled set, test on the real reference: the downstream score's CNN
    (refinekit.downstream: standardised inputs, SEEDS seeds, a class-balanced subset of at most
    MAX_TRAIN images), the judge train chooses with and the gap split uses, so the report's
    numbers answer one question with one classifier. Per replicate: the bootstrap-weighted mean
    over test images of the fraction of seeds that classified each correctly."""
    usable = {
        name: x
        for name, x in candidates.items()
        if x.labels is not None and x.judged is not None and (x.labels >= 0).any()
    }
    advance = stage("train on X, test on real", len(usable))
    assert ref.labels is not None and ref.judged is not None  # classes >= 2: labelled reference
    test = ref.labels >= 0
    weights = ref.counts[:, test].astype(np.float64)
    for name, x in usable.items():
        assert x.labels is not None and x.judged is not None
        keep = np.flatnonzero(x.labels >= 0)
        # Seeded by the labels alone: identical training sets train identical classifiers.
        pick = keep[downstream_score.subset(x.labels[keep], downstream_score.MAX_TRAIN, seed)]
        score = downstream_score.score_training_set(
            x.judged[pick],
            x.labels[pick],
            ref.judged[test],
            ref.labels[test],
            classes=classes,
            epochs=downstream_score.epochs_for(len(pick)),
        )
        out.put(
            "train_on_x_accuracy",
            name,
            weights @ score.correct / weights.sum(axis=1),
            trained_on=int(len(pick)),
            tested_on=int(test.sum()),
        )
        advance(1)


def label_retention(
    synthetic: Prepared,
    refined: Prepared,
    labels: np.ndarray,
    class_names: list[str],
    seed: int,
    out: Computed,
    stage: StartStage = _NO_STAGES,
    images: np.ndarray | None = None,
) -> retention.Scores:
    """Retention row: "refined" = fraction keeping its synthetic label, "synthetic" = ceiling.

    refined[i] must be the refinement of synthetic[i] (paired counts); labels (n,) ints.
    images: the synthetic images (float [0, 1] NHWC); given (as gap-report does), the
    classifiers also train on photometric variants of each (retention.py).
    """
    photometric = images is not None
    advance = stage("label retention", retention.steps(len(labels), photometric))
    scores = retention.cross_fit(
        synthetic.small, refined.small, labels, len(class_names), seed, advance, images=images
    )
    result = retention.summarise(scores, labels, class_names, synthetic.counts)
    out.put(retention.KEY, "synthetic", result["ceiling"])
    out.put(retention.KEY, "refined", result["retention"], **result["details"])
    return scores
