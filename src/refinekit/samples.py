"""Sample grids: synthetic | refined | amplified difference, plus a row of real images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

DIFF_GAIN = 4.0  # |refined - synthetic| is small; amplify it so changes are visible


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float NxHxWxC in [-1, 1] -> uint8."""
    return np.round((np.clip(images, -1, 1) + 1) * 127.5).astype(np.uint8)


def sample_grid(synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray, min_cell: int = 64) -> np.ndarray:
    """One uint8 HxWx3 picture: rows synthetic, refined, |difference| x DIFF_GAIN, real.

    All inputs are float NxHxWxC in [-1, 1] with the same H, W, C. Small images are
    enlarged (nearest neighbour) so each cell is at least `min_cell` pixels tall.
    """
    diff = np.clip(np.abs(refined - synthetic) * DIFF_GAIN, 0, 2) - 1
    rows = [synthetic, refined, diff, real[: len(synthetic)]]
    n, h, w, c = synthetic.shape
    zoom = max(1, -(-min_cell // h))
    gap = 2
    height = len(rows) * (h * zoom + gap) + gap
    width = n * (w * zoom + gap) + gap
    grid = np.full((height, width, 3), 40, np.uint8)
    for r, row in enumerate(rows):
        cells = to_uint8(row)
        if c == 1:
            cells = np.repeat(cells, 3, axis=-1)
        for i, cell in enumerate(cells):
            big = cell.repeat(zoom, 0).repeat(zoom, 1)
            top, left = gap + r * (h * zoom + gap), gap + i * (w * zoom + gap)
            grid[top : top + h * zoom, left : left + w * zoom] = big
    return grid


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    import imageio.v3 as iio

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    iio.imwrite(tmp, image, extension=".png")
    os.replace(tmp, path)
