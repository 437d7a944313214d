"""Multi-scale sliced Wasserstein distance on Laplacian-pyramid patches (Karras et al. 2018).

Each image is split into a Laplacian pyramid: band-pass levels at full size, 1/2, 1/4, ...
down to the last level whose side is at least MIN_SIDE, plus the low-pass residual at that
size (colour and layout). From every level the same PATCHES seeded positions give 7x7xC
patches; each level has PROJECTIONS fixed random unit directions. For one projection the
distance is the Wasserstein-1 distance between the two sets' distributions of projected
patches, in units of the reference's standard deviation along it; the metric is the mean over
projections and levels.

Bootstrap: the 1-D distributions are binned once per image (BINS bins whose edges are
quantiles of the reference set along each projection), so a replicate's distribution is a
count-weighted sum of per-image histograms and its W1 is the area between binned CDFs. The
bins come from the reference (`fit_basis`) and every set is binned with them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATCH = 7
PATCHES = 32  # per image and level
PROJECTIONS = 32  # per level
BINS = 24
MIN_SIDE = 8
EDGE_SAMPLE = 500  # reference images used for the bin edges
CHUNK = 256
SEED = 1234

DESCRIPTION = (
    f"Laplacian pyramid (binomial 5-tap filter) band-pass levels down to {MIN_SIDE} pixels plus "
    f"the low-pass residual; {PATCHES} seeded {PATCH}x{PATCH} patches per image and level; "
    f"{PROJECTIONS} random unit projections per level; W1 between the projected patch "
    f"distributions (binned at {BINS} reference quantiles) in reference standard deviations, "
    "mean over projections and levels"
)


def _blur(x: np.ndarray) -> np.ndarray:
    """Separable binomial [1 4 6 4 1]/16 filter with reflected edges, (n, h, w, c) float32."""
    taps = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
    for axis in (1, 2):
        pad = [(2, 2) if a == axis else (0, 0) for a in range(4)]
        p = np.pad(x, pad, mode="reflect") if x.shape[axis] > 2 else np.pad(x, pad, mode="edge")
        size = x.shape[axis]
        out = np.zeros_like(x)
        for i, w in enumerate(taps):
            window = p[:, i : i + size] if axis == 1 else p[:, :, i : i + size]
            out += np.float32(w) * window
        x = out
    return x


def _down(x: np.ndarray) -> np.ndarray:
    return _blur(x)[:, ::2, ::2]


def _up(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    big = x.repeat(2, axis=1).repeat(2, axis=2)[:, : shape[0], : shape[1]]
    return _blur(big)


def pyramid(images: np.ndarray) -> list[np.ndarray]:
    """Band-pass levels (largest first) and the low-pass residual, float32 (n, h_l, w_l, C)."""
    levels, g = [], images.astype(np.float32)
    while min(g.shape[1:3]) // 2 >= MIN_SIDE:
        low = _down(g)
        levels.append(g - _up(low, g.shape[1:3]))
        g = low
    levels.append(g)
    return levels


@dataclass(frozen=True)
class Basis:
    """Patch positions, projections and bin edges per level, fitted on the reference set."""

    positions: tuple[np.ndarray, ...]  # (K, 2) top-left corners per level
    projections: tuple[np.ndarray, ...]  # (PATCH*PATCH*C, PROJECTIONS) per level
    edges: tuple[np.ndarray, ...]  # (PROJECTIONS, BINS - 1) per level
    widths: tuple[np.ndarray, ...]  # (PROJECTIONS, BINS - 2) edge gaps / reference std


def _positions(height: int, width: int, level: int) -> np.ndarray:
    ph, pw = max(1, height - PATCH + 1), max(1, width - PATCH + 1)
    rng = np.random.default_rng([SEED, level])
    flat = rng.choice(ph * pw, size=min(PATCHES, ph * pw), replace=False)
    return np.stack([flat // pw, flat % pw], axis=1)


def _patches(level: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(n, h, w, C) -> (n, K, PATCH*PATCH*C); levels smaller than a patch are edge-padded."""
    n, h, w, c = level.shape
    if h < PATCH or w < PATCH:
        level = np.pad(
            level, ((0, 0), (0, max(0, PATCH - h)), (0, max(0, PATCH - w)), (0, 0)), mode="edge"
        )
    offsets = np.arange(PATCH)
    rows = positions[:, 0, None, None] + offsets[None, :, None]  # (K, P, 1)
    cols = positions[:, 1, None, None] + offsets[None, None, :]  # (K, 1, P)
    return level[:, rows, cols].reshape(n, len(positions), PATCH * PATCH * c)


def _projected(images: np.ndarray, basis_positions, projections) -> list[np.ndarray]:
    """Per level: (n, K, PROJECTIONS) projected patches."""
    out = []
    levels = pyramid(images)
    for level, pos, proj in zip(levels, basis_positions, projections, strict=True):
        patches = _patches(level, pos)
        out.append(patches @ proj)
    return out


def fit_basis(reference: np.ndarray) -> Basis:
    """Positions, projections and quantile bin edges from (a seeded sample of) the reference."""
    n, height, width, channels = reference.shape
    if n > EDGE_SAMPLE:
        pick = np.random.default_rng([SEED, 99]).choice(n, EDGE_SAMPLE, replace=False)
        reference = reference[np.sort(pick)]
    shapes = [lv.shape[1:3] for lv in pyramid(reference[:1])]
    positions = tuple(_positions(h, w, i) for i, (h, w) in enumerate(shapes))
    projections = []
    for i in range(len(shapes)):
        rng = np.random.default_rng([SEED, 1000 + i])
        p = rng.standard_normal((PATCH * PATCH * channels, PROJECTIONS))
        projections.append((p / np.linalg.norm(p, axis=0)).astype(np.float32))
    edges, widths = [], []
    quantiles = np.linspace(0, 1, BINS + 1)[1:-1]
    for values in _projected(reference, positions, projections):
        flat = values.reshape(-1, PROJECTIONS).astype(np.float64)
        e = np.quantile(flat, quantiles, axis=0).T  # (PROJECTIONS, BINS - 1)
        std = np.maximum(flat.std(axis=0), 1e-12)[:, None]
        edges.append(e)
        widths.append(np.diff(e, axis=1) / std)
    return Basis(positions, tuple(projections), tuple(edges), tuple(widths))


def image_histograms(images: np.ndarray, basis: Basis) -> np.ndarray:
    """(n, levels * PROJECTIONS, BINS) uint8 counts of each image's projected patches per bin."""
    n = len(images)
    levels = len(basis.positions)
    out = np.empty((n, levels * PROJECTIONS, BINS), np.uint8)
    for start in range(0, n, CHUNK):
        chunk = images[start : start + CHUNK]
        b = len(chunk)
        for li, values in enumerate(_projected(chunk, basis.positions, basis.projections)):
            # bin = number of edges below the value: 0 .. BINS - 1
            bins = (values[..., None] > basis.edges[li][None, None]).sum(-1)  # (b, K, P)
            cell = (np.arange(b)[:, None, None] * PROJECTIONS + np.arange(PROJECTIONS)) * BINS
            counted = np.bincount((cell + bins).ravel(), minlength=b * PROJECTIONS * BINS)
            rows = slice(li * PROJECTIONS, (li + 1) * PROJECTIONS)
            out[start : start + b, rows] = counted.reshape(b, PROJECTIONS, BINS)
    return out


def set_cdfs(histograms: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Per replicate, the binned CDF at the interior edges: (R, levels * PROJECTIONS, BINS - 1)."""
    n, p, b = histograms.shape
    total = counts.astype(np.float32) @ histograms.reshape(n, p * b).astype(np.float32)
    total = total.reshape(len(counts), p, b).astype(np.float64)
    cdf = np.cumsum(total, axis=-1) / total.sum(axis=-1, keepdims=True)
    return cdf[..., :-1]


def swd(cdf_x: np.ndarray, cdf_ref: np.ndarray, basis: Basis) -> np.ndarray:
    """Mean over projections and levels of the binned W1 (in reference stds) -> (R,)."""
    widths = np.concatenate(basis.widths)  # (levels * P, BINS - 2)
    diff = np.abs(cdf_x - cdf_ref)
    trapezoid = 0.5 * (diff[..., :-1] + diff[..., 1:])  # between edges j and j + 1
    return (trapezoid * widths).sum(axis=-1).mean(axis=-1)
