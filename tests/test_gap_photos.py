"""Natural-photo patches for the gap tests (`photo_patches` in helpers.py): scikit-image's bundled
RGB photos (a test-only dependency), cut into two pixel-disjoint sets (the left and the right
half of every photo) on a checkerboard of patch-sized cells, each cell used at most once. Checked
here: the patches are seeded and in range, and the two halves differ.
"""

from __future__ import annotations

import numpy as np

from helpers import photo_patches


def test_patches_are_seeded_in_range_and_the_halves_differ():
    a, b = photo_patches(20, 16, 0, 1), photo_patches(20, 16, 0, 1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (20, 16, 16, 3) and 0 <= a.min() <= a.max() <= 1
    assert not np.allclose(a, photo_patches(20, 16, 1, 1))
