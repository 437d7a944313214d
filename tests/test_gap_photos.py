"""Natural-photo patches for the gap tests: scikit-image's bundled RGB photos (a test-only
dependency), cut into two pixel-disjoint sets (the left and the right half of every photo), so
"real vs real" is two disjoint samples of one distribution of natural images. Every photo is
tiled into patch-sized cells that alternate between the two sets like a checkerboard, and each
cell is used at most once, so no two patches share a pixel (overlapping patches let a
classifier recognise a scene it trained on) and both sets cover the same scenes evenly (the
left and right halves of a photo were told apart by a classifier).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "ihc.png",
    "motorcycle_left.png",
)
SCALE = 1  # photos are shrunk by this factor (box filter)


@lru_cache(maxsize=4)
def _photos() -> tuple[np.ndarray, ...]:
    from pathlib import Path

    import imageio.v3 as iio
    import skimage.data

    folder = Path(skimage.data.__file__).parent
    out = []
    for name in PHOTOS:
        image = iio.imread(folder / name)
        image = image[..., :3].astype(np.float32) / 255.0
        h, w = (image.shape[0] // SCALE) * SCALE, (image.shape[1] // SCALE) * SCALE
        small = image[:h, :w].reshape(h // SCALE, SCALE, w // SCALE, SCALE, 3).mean(axis=(1, 3))
        out.append(small)
    return tuple(out)


def photo_patches(count: int, size: int, half: int, seed: int) -> np.ndarray:
    """`count` distinct size x size RGB patches from the checkerboard cells of `half` (0 or 1),
    in seeded random order, float32 in [0, 1]; no two patches share a pixel."""
    rng = np.random.default_rng([seed, half])
    photos = _photos()
    cell = size
    cells = [
        (p, top, left)
        for p, photo in enumerate(photos)
        for top in range(0, photo.shape[0] - cell + 1, cell)
        for left in range(0, photo.shape[1] - cell + 1, cell)
        if (top // cell + left // cell) % 2 == half
    ]
    if count > len(cells):
        raise ValueError(f"only {len(cells)} patches of {size} pixels per half, not {count}")
    pick = rng.permutation(len(cells))[:count]
    return np.stack([photos[p][y : y + size, x : x + size] for p, y, x in (cells[k] for k in pick)])


def test_patches_are_seeded_in_range_and_the_halves_differ():
    a, b = photo_patches(20, 16, 0, 1), photo_patches(20, 16, 0, 1)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (20, 16, 16, 3) and 0 <= a.min() <= a.max() <= 1
    assert not np.allclose(a, photo_patches(20, 16, 1, 1))
