"""Procedural stress cases for training stability (docs/training.md): the discriminator wins pretraining.

Synthetic: clean, thin, centred glyphs (10 stroke templates, one class subfolder each), 16x16
gray. Real: the same templates drawn as an acquisition process would (thicker strokes, jitter,
blur, a gray background, noise, contrast loss), so the two sets are trivially separable and a
freshly pretrained discriminator is perfect on them. Not built from any shipped data set.

    python tests/stress_case.py OUT [--synthetic 3000] [--real 900] [--seed 0]
writes OUT/synthetic/<class>/*.png, OUT/real/*.png (unlabelled real set, as users have).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v3 as iio
import numpy as np

# Each glyph: poly-lines in a unit square (x right, y down).
TEMPLATES: dict[str, list[list[tuple[float, float]]]] = {
    "bar": [[(0.5, 0.15), (0.5, 0.85)]],
    "dash": [[(0.15, 0.5), (0.85, 0.5)]],
    "slash": [[(0.25, 0.85), (0.75, 0.15)]],
    "cross": [[(0.5, 0.15), (0.5, 0.85)], [(0.15, 0.5), (0.85, 0.5)]],
    "ell": [[(0.3, 0.15), (0.3, 0.85), (0.75, 0.85)]],
    "tee": [[(0.2, 0.2), (0.8, 0.2)], [(0.5, 0.2), (0.5, 0.85)]],
    "box": [[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75), (0.25, 0.25)]],
    "vee": [[(0.2, 0.2), (0.5, 0.8), (0.8, 0.2)]],
    "zed": [[(0.2, 0.2), (0.8, 0.2), (0.2, 0.8), (0.8, 0.8)]],
    "hook": [[(0.65, 0.15), (0.65, 0.7), (0.45, 0.85), (0.3, 0.7)]],
}
CLASSES = tuple(TEMPLATES)


def draw(strokes, size: int, width: float, shift: np.ndarray, angle: float) -> np.ndarray:
    """Anti-aliased poly-lines of `width` pixels: float (size, size) in [0, 1], 1 = ink."""
    ys, xs = np.mgrid[0:size, 0:size] + 0.5
    ink = np.zeros((size, size))
    c, s = np.cos(angle), np.sin(angle)
    for line in strokes:
        pts = np.array(line) - 0.5
        pts = pts @ np.array([[c, -s], [s, c]]).T + 0.5 + shift
        pts = pts * size
        for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:], strict=True):
            d = np.array([x1 - x0, y1 - y0])
            t = ((xs - x0) * d[0] + (ys - y0) * d[1]) / max(d @ d, 1e-9)
            t = np.clip(t, 0, 1)
            dist = np.hypot(xs - (x0 + t * d[0]), ys - (y0 + t * d[1]))
            ink = np.maximum(ink, np.clip(width / 2 + 0.5 - dist, 0, 1))
    return ink


def blur(image: np.ndarray) -> np.ndarray:
    k = np.array([1, 2, 1]) / 4
    padded = np.pad(image, 1, mode="edge")
    rows = k[0] * padded[:-2] + k[1] * padded[1:-1] + k[2] * padded[2:]
    return k[0] * rows[:, :-2] + k[1] * rows[:, 1:-1] + k[2] * rows[:, 2:]


def synthetic_glyph(name: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    shift = rng.uniform(-0.04, 0.04, 2)
    return draw(TEMPLATES[name], size, 1.0, shift, rng.uniform(-0.08, 0.08))


def real_glyph(name: str, rng: np.random.Generator, size: int = 16) -> np.ndarray:
    shift = rng.uniform(-0.1, 0.1, 2)
    ink = draw(TEMPLATES[name], size, rng.uniform(1.8, 2.8), shift, rng.uniform(-0.3, 0.3))
    ink = blur(ink)
    background = rng.uniform(0.15, 0.3)
    image = background + (rng.uniform(0.75, 0.95) - background) * ink
    image = image + rng.normal(0, 0.06, image.shape)
    return np.clip(image, 0, 1)


def write_case(out: Path, synthetic: int, real: int, seed: int = 0) -> tuple[Path, Path]:
    rng = np.random.default_rng(seed)
    syn_dir, real_dir = Path(out) / "synthetic", Path(out) / "real"
    for i in range(synthetic):
        name = CLASSES[i % len(CLASSES)]
        folder = syn_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        glyph = synthetic_glyph(name, rng)
        iio.imwrite(folder / f"{i:05d}.png", np.round(glyph * 255).astype(np.uint8))
    real_dir.mkdir(parents=True, exist_ok=True)
    for i in range(real):
        glyph = real_glyph(CLASSES[i % len(CLASSES)], rng)
        iio.imwrite(real_dir / f"{i:05d}.png", np.round(glyph * 255).astype(np.uint8))
    return syn_dir, real_dir


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--synthetic", type=int, default=3000)
    parser.add_argument("--real", type=int, default=900)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_case(args.out, args.synthetic, args.real, args.seed)
