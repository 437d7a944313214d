"""One way to lay images out in a grid: the run page's sample grids and the report's sample
tiles both use it."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def tile(
    rows: Sequence[Sequence[np.ndarray]],
    *,
    gap: int,
    fill: float,
    zoom: int = 1,
    columns: int = 0,
) -> np.ndarray:
    """Cells (h, w, c), all of one shape and dtype, laid out row by row, each enlarged `zoom`
    times (nearest neighbour), with `gap` pixels of `fill` around and between them. A row may
    be shorter than the longest (or than `columns`): its missing cells stay `fill`."""
    first = next(cell for row in rows for cell in row)
    h, w, c = first.shape
    h, w = h * zoom, w * zoom
    width = max(columns, *(len(row) for row in rows))
    grid = np.full(
        (len(rows) * (h + gap) + gap, width * (w + gap) + gap, c), fill, dtype=first.dtype
    )
    for r, row in enumerate(rows):
        for i, cell in enumerate(row):
            top, left = gap + r * (h + gap), gap + i * (w + gap)
            grid[top : top + h, left : left + w] = cell.repeat(zoom, 0).repeat(zoom, 1)
    return grid
