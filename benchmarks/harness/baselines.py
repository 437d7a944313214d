"""Training-free baselines a user could pick instead of training a refiner. Each maps the
synthetic set (N, D) in [0, 1] to a set of the same order (row i stays image i's), using only
the unlabelled real set; none sees a label.

- histogram: each image's pixel ranks mapped onto the real set's pooled per-channel quantiles.
- fda: Fourier domain adaptation (Yang & Soatto 2020): the lowest frequencies' amplitude
  (a square of half-width beta * min(H, W), at least one coefficient) from a random real image.
- camera_grid: a grid search over four camera parameters (blur sigma, 2x resolution loss,
  quantisation levels, noise std) minimising a pixel MMD to the real set; applied to all images.
- augment: classical augmentation, one random variant per image (blur, noise, contrast and
  offset, rotation up to 10 degrees and a shift up to 1 px).
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import ndimage

NAMES = ("histogram", "fda", "camera_grid", "augment")
FDA_BETA = 0.1


def make(name: str, syn: np.ndarray, real: np.ndarray, shape, seed: int = 0) -> tuple:
    """(refined (N, D), details) for baseline `name`."""
    rng = np.random.default_rng([seed, NAMES.index(name)])
    img = syn.reshape(len(syn), *shape)
    ref = real.reshape(len(real), *shape)
    details: dict = {}
    if name == "histogram":
        out = histogram(img, ref)
    elif name == "fda":
        out = fda(img, ref, rng)
    elif name == "camera_grid":
        params = fit_camera(img, ref, rng)
        out = camera(img, *params, rng=rng)
        details = dict(zip(("blur", "half_resolution", "levels", "noise"), params, strict=True))
    elif name == "augment":
        out = augment(img, rng)
    else:
        raise ValueError(f"unknown baseline {name!r}; expected one of {NAMES}")
    return np.clip(out, 0, 1).reshape(len(syn), -1).astype(np.float32), details


def histogram(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    n, h, w, c = img.shape
    out = np.empty_like(img)
    q = (np.arange(h * w) + 0.5) / (h * w)
    for ch in range(c):
        target = np.quantile(ref[..., ch].ravel(), q)
        flat = img[..., ch].reshape(n, -1)
        ranks = np.argsort(np.argsort(flat, axis=1, kind="stable"), axis=1)
        out[..., ch] = target[ranks].reshape(n, h, w)
    return out


def fda(img: np.ndarray, ref: np.ndarray, rng) -> np.ndarray:
    n, h, w, c = img.shape
    b = max(1, int(np.floor(min(h, w) * FDA_BETA)))
    partner = ref[rng.integers(0, len(ref), n)]
    fs = np.fft.fftshift(np.fft.fft2(img, axes=(1, 2)), axes=(1, 2))
    fr = np.fft.fftshift(np.fft.fft2(partner, axes=(1, 2)), axes=(1, 2))
    amp, phase = np.abs(fs), np.angle(fs)
    cy, cx = h // 2, w // 2
    amp[:, cy - b : cy + b + 1, cx - b : cx + b + 1] = np.abs(fr)[
        :, cy - b : cy + b + 1, cx - b : cx + b + 1
    ]
    mixed = np.fft.ifftshift(amp * np.exp(1j * phase), axes=(1, 2))
    return np.real(np.fft.ifft2(mixed, axes=(1, 2)))


def camera(img, blur, half_resolution, levels, noise, rng) -> np.ndarray:
    out = img
    if blur > 0:
        out = ndimage.gaussian_filter(out, (0, blur, blur, 0), mode="nearest")
    if half_resolution:
        n, h, w, c = out.shape
        small = out.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        out = ndimage.zoom(small, (1, 2, 2, 1), order=1, mode="nearest")
    if noise > 0:
        out = out + rng.normal(0, noise, out.shape)
    if levels < 256:
        out = np.round(np.clip(out, 0, 1) * (levels - 1)) / (levels - 1)
    return out


def mmd(a: np.ndarray, b: np.ndarray) -> float:
    """Squared MMD, RBF kernel on pixels, bandwidth the median distance of b."""
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)

    def sq(x, y):
        return (x**2).sum(1)[:, None] + (y**2).sum(1)[None] - 2 * x @ y.T

    bb = sq(b, b)
    gamma = 1.0 / np.median(bb[bb > 0])
    return float(
        np.exp(-gamma * sq(a, a)).mean()
        + np.exp(-gamma * bb).mean()
        - 2 * np.exp(-gamma * sq(a, b)).mean()
    )


def fit_camera(img, ref, rng, sample: int = 300):
    syn = img[rng.choice(len(img), min(sample, len(img)), replace=False)]
    real = ref[rng.choice(len(ref), min(sample, len(ref)), replace=False)]
    best, best_params = np.inf, (0.0, False, 256, 0.0)
    halvable = img.shape[1] % 2 == 0 and img.shape[2] % 2 == 0
    grid = itertools.product(
        (0.0, 0.5, 0.8, 1.1, 1.5), (False, True) if halvable else (False,),
        (256, 32, 16, 8), (0.0, 0.02, 0.04, 0.08),
    )  # fmt: skip
    for params in grid:
        score = mmd(camera(syn, *params, rng=np.random.default_rng(0)), real)
        if score < best:
            best, best_params = score, params
    return best_params


def augment(img: np.ndarray, rng) -> np.ndarray:
    n, h, w, c = img.shape
    out = np.empty_like(img)
    for i in range(n):
        angle = np.deg2rad(rng.uniform(-10, 10))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        centre = np.array([(h - 1) / 2, (w - 1) / 2])
        shift = rng.uniform(-1, 1, 2)
        offset = centre - rot @ centre - shift
        x = np.stack(
            [ndimage.affine_transform(img[i, ..., k], rot, offset, order=1, mode="nearest")
             for k in range(c)], axis=-1,
        )  # fmt: skip
        s = rng.uniform(0, 1.2)
        if s > 0.1:
            x = ndimage.gaussian_filter(x, (s, s, 0), mode="nearest")
        x = x * rng.uniform(0.5, 1.2) + rng.uniform(-0.1, 0.3)
        out[i] = x + rng.normal(0, rng.uniform(0, 0.08), x.shape)
    return out
