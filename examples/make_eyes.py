"""Generate a small synthetic/"real" pair of eye images for the refinekit walkthrough.

Synthetic images are clean renders: flat sclera, sharp iris and pupil, even light. "Real"
images are the same scenes as a camera would see them: blur, sensor noise, lower contrast,
a darker exposure and vignetting. Each synthetic image has a JSON label sidecar (pupil
centre), and both sets sit in class subfolders by gaze direction (left / centre / right), so
`refinekit gap-report` can measure train-on-synthetic, test-on-real accuracy.

    python examples/make_eyes.py OUT_DIR [--synthetic 1200] [--real 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np

H, W = 32, 48
CLASSES = ("left", "centre", "right")


def render(rng: np.random.Generator) -> tuple[np.ndarray, dict, str]:
    """One clean eye in [0, 1] and its label."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    cls = int(rng.integers(0, 3))
    px = W / 2 + (cls - 1) * 9 + rng.uniform(-3, 3)
    py = H / 2 + rng.uniform(-3, 3)
    iris_r = rng.uniform(7, 9)
    skin = rng.uniform(0.55, 0.7)
    img = np.full((H, W), skin, np.float32)
    sclera = ((xx - W / 2) / (W * 0.45)) ** 2 + (
        (yy - H / 2) / (H * rng.uniform(0.3, 0.38))
    ) ** 2 < 1
    img[sclera] = 0.92
    d = np.hypot(xx - px, yy - py)
    iris = (d < iris_r) & sclera
    img[iris] = rng.uniform(0.3, 0.45)
    img[(d < iris_r * 0.45) & sclera] = 0.05
    glint = np.hypot(xx - px - 2, yy - py - 2) < 1.2
    img[glint & sclera] = 1.0
    return (
        img,
        {"pupil": [round(float(px), 2), round(float(py), 2)], "gaze": CLASSES[cls]},
        CLASSES[cls],
    )


def camera(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a cheap camera makes of a clean render."""
    k = np.array([1, 4, 6, 4, 1], np.float32)
    k /= k.sum()
    blurred = np.apply_along_axis(
        lambda r: np.convolve(r, k, "same"), 1, np.pad(img, 2, mode="edge")
    )
    blurred = np.apply_along_axis(lambda c: np.convolve(c, k, "same"), 0, blurred)[2:-2, 2:-2]
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    vignette = 1 - 0.35 * (((xx - W / 2) / (W / 2)) ** 2 + ((yy - H / 2) / (H / 2)) ** 2)
    out = 0.12 + 0.6 * blurred * vignette
    out = out ** rng.uniform(1.1, 1.3)
    out = out + rng.normal(0, 0.035, out.shape)
    return np.clip(out, 0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--synthetic", type=int, default=1200)
    parser.add_argument("--real", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    for i in range(args.synthetic):
        img, label, cls = render(rng)
        folder = args.out / "synthetic" / cls
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(folder / f"eye_{i:05d}.png", np.round(img * 255).astype(np.uint8))
        (folder / f"eye_{i:05d}.json").write_text(json.dumps(label) + "\n")
    for i in range(args.real):
        img, _, cls = render(rng)
        folder = args.out / "real" / cls
        folder.mkdir(parents=True, exist_ok=True)
        iio.imwrite(
            folder / f"photo_{i:05d}.png", np.round(camera(img, rng) * 255).astype(np.uint8)
        )
    print(f"wrote {args.synthetic} synthetic and {args.real} real {H}x{W} images to {args.out}")


if __name__ == "__main__":
    main()
