"""Sample grids: synthetic | refined | signed difference, plus a row of real images."""

from __future__ import annotations

import numpy as np

from ..io.pixels import model_to_uint8
from ..io.tiles import tile

MAX_DIFF_GAIN = 8.0  # small changes are amplified up to this factor so they stay visible


def sample_grid(
    synthetic: np.ndarray, refined: np.ndarray, real: np.ndarray, min_cell: int = 64
) -> np.ndarray:
    """One uint8 HxWx3 picture: rows synthetic, refined, difference, real.

    The difference row is signed around mid-gray (darker = the refiner darkened the pixel),
    scaled so the grid's largest change reaches black or white (gain at most MAX_DIFF_GAIN).
    All inputs are float NxHxWxC in [-1, 1] with the same H, W, C. Small images are enlarged
    (nearest neighbour) so each cell is at least `min_cell` pixels tall.
    """
    change = refined - synthetic
    gain = min(MAX_DIFF_GAIN, 1.0 / max(float(np.abs(change).max()), 1e-6))
    diff = np.clip(change * gain, -1, 1)
    rows = [synthetic, refined, diff, real[: len(synthetic)]]
    cells = []
    for row in rows:
        pixels = model_to_uint8(row)
        cells.append(list(np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels))
    zoom = max(1, -(-min_cell // synthetic.shape[1]))
    return tile(cells, gap=2, fill=40, zoom=zoom)


def sample_indices(
    labels: np.ndarray | None, total: int, seed: int, count: int = 8, most: int = 16
) -> np.ndarray:
    """Which images the sample grids show, fixed for the whole run.

    With class labels (int (total,), -1 = none): one image per class in turn, so every grid
    shows every class (count grows to the number of classes, at most `most`); without them,
    `count` images drawn at random with the seed.
    """
    rng = np.random.default_rng([seed, 17])
    if labels is None or (labels < 0).all():
        return np.sort(rng.permutation(total)[: min(count, total)])
    classes = [c for c in np.unique(labels) if c >= 0]
    n = min(max(count, len(classes)), most, total)
    pools = [rng.permutation(np.flatnonzero(labels == c)).tolist() for c in classes]
    picked: list[int] = []
    while len(picked) < n and any(pools):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(pool.pop())
    return np.array(picked, np.int64)
