"""io/tiles.py: the one grid layout of the run page and the report, against hand values."""

import numpy as np

from refinekit.io.tiles import tile


def test_cells_are_enlarged_and_separated_by_the_gap_and_short_rows_stay_filled():
    a = np.full((1, 2, 1), 5, np.uint8)
    b = np.full((1, 2, 1), 7, np.uint8)
    grid = tile([[a, b], [a]], gap=1, fill=0, zoom=2)
    assert grid.shape == (2 * (2 + 1) + 1, 2 * (4 + 1) + 1, 1)
    expected = np.zeros((7, 11), np.uint8)
    expected[1:3, 1:5] = 5
    expected[1:3, 6:10] = 7
    expected[4:6, 1:5] = 5
    assert np.array_equal(grid[..., 0], expected)
    assert tile([[a]], gap=0, fill=0, columns=3).shape == (1, 6, 1)
