"""Test images the gap tests generate themselves, and the disturbances of the FID paper's
validation (Heusel et al. 2017, appendix): Gaussian noise, Gaussian blur, black rectangles,
swirl, salt-and-pepper. The generators live in helpers.py, where the other gap tests import them
from; the tests here check them.
"""

from __future__ import annotations

import numpy as np

from helpers import DISTURBANCES, gaussian_blur, scenes, swirl


def test_scenes_are_deterministic_varied_and_in_range():
    a, b = scenes(8, 16, 0), scenes(8, 16, 0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert not np.allclose(a[0], a[1])


def test_level_zero_of_every_disturbance_is_the_identity():
    images = scenes(4, 16, 1)
    for name, (disturb, levels) in DISTURBANCES.items():
        np.testing.assert_allclose(disturb(images, levels[0]), images, atol=1e-6, err_msg=name)


def test_disturbances_change_images_more_with_level():
    images = scenes(4, 16, 2)
    for name, (disturb, levels) in DISTURBANCES.items():
        changes = [np.abs(disturb(images, level) - images).mean() for level in levels]
        assert all(b > a for a, b in zip(changes, changes[1:], strict=False)), (name, changes)


def test_blur_preserves_a_constant_image_and_swirl_keeps_the_centre():
    flat = np.full((1, 9, 9, 1), 0.3, np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 2.0), flat, atol=1e-6)
    images = scenes(1, 9, 3)
    np.testing.assert_allclose(swirl(images, 3.0)[0, 4, 4], images[0, 4, 4], atol=1e-5)
