"""Parts of a gap report that describe rather than measure: how the sets were read, what
they hold, the chart data, the sample images, and the label-retention step's inputs."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import compute, inputs, retention, spectrum, summary
from .histogram import BINS, set_histograms

SAMPLES_PER_SET = 16
CHART_BINS = 64


def label_retention(syn, ref_set, paired, prepared, seed, computed, stage):
    """Label retention when the synthetic set has class subfolders and a paired refined set.

    Returns the indices of the refined images that changed class most confidently, or None.
    """
    names = syn.class_names()
    if ref_set is None or not paired or names is None or len(set(names)) < 2:
        return None
    class_names = sorted(set(names))
    labels = inputs.label_ids(names, class_names)
    if np.bincount(labels).min() < retention.FOLDS:
        return None  # a class too small to appear in every fold
    compute.label_retention(
        prepared[summary.SYNTHETIC],
        prepared[summary.REFINED],
        labels,
        class_names,
        seed,
        computed,
        stage,
        images=syn.images,  # photometric variants: a change of look is not a change of class
    )
    changed = computed.details[retention.KEY]["refined"]["changed"]
    for entry in changed:
        entry["synthetic"] = syn.names[entry["index"]]
        entry["refined"] = ref_set.names[entry["index"]]
    return np.array([entry["index"] for entry in changed], dtype=np.int64)


def reading(size, channels, sets) -> dict:
    resized = [
        name
        for name, s in sets.items()
        if s is not None and any(tuple(sz) != tuple(size) for sz in s.source_sizes)
    ]
    return {
        "path": "refinekit.io.sets.load_set (the one reading path for every set)",
        "decoder": "Pillow via imageio; first frame; 16-bit kept as 16-bit",
        "alpha": "dropped",
        "mode": inputs.MODES[channels],
        "channels": channels,
        "conversion": "gray to RGB repeats the channel; RGB to gray takes BT.601 luma",
        "size": list(size),
        "resize_filter": inputs.RESIZE_FILTER,
        "resized_sets": resized,
        "value_range": "float32 in [0, 1] (8-bit / 255, 16-bit / 65535)",
    }


def describe_sets(sets, real_a, real_b, refined_info) -> dict:
    out: dict[str, Any] = {}
    for name, image_set in sets.items():
        if image_set is None:
            out[name] = None
            continue
        out[name] = image_set.describe()
    out["real"].update(
        reference_count=len(real_a),
        holdout_count=len(real_b),
        split="seeded halves (stratified by class when labelled)",
    )
    if out["refined"] is not None:
        out["refined"].update(refined_info)
    return out


def charts(reference, prepared) -> dict:
    """Point-estimate spectra and histograms for the HTML charts."""
    every = {"real": reference, **{k: v for k, v in prepared.items()}}
    rings = reference.spectra.shape[1]
    log_power = {
        name: spectrum.set_log_spectrum(p.spectra, p.counts[:1])[0].tolist()
        for name, p in every.items()
    }
    factor = BINS // CHART_BINS
    hist = {}
    for name, p in every.items():
        h = set_histograms(p.pixels, p.counts[:1])[0]  # (C, BINS)
        hist[name] = h.reshape(h.shape[0], CHART_BINS, factor).sum(-1) * CHART_BINS
    channels = next(iter(hist.values())).shape[0]
    return {
        "spectrum": {
            "frequency": spectrum.ring_frequencies(rings).tolist(),
            "log10_power": log_power,
        },
        "histogram": {
            "bins": CHART_BINS,
            "edges": np.linspace(0, 1, CHART_BINS + 1).tolist(),
            "channels": [
                {name: h[c].tolist() for name, h in hist.items()} for c in range(channels)
            ],
        },
    }


def samples(real_a, syn, ref_set) -> dict[str, np.ndarray]:
    """A few images per set for the HTML grids (refined ones line up with synthetic ones)."""
    out = {"synthetic": syn.images[:SAMPLES_PER_SET], "real": real_a.images[:SAMPLES_PER_SET]}
    if ref_set is not None:
        out["refined"] = ref_set.images[:SAMPLES_PER_SET]
    return out
