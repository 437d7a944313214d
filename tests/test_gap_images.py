"""Test images the gap tests generate themselves, and the disturbances of the FID paper's
validation (Heusel et al. 2017, appendix): Gaussian noise, Gaussian blur, black rectangles,
swirl, salt-and-pepper. The tests here check the generators; the other gap tests import them.
"""

from __future__ import annotations

import numpy as np


def _soft(v: np.ndarray, sharpness: float) -> np.ndarray:
    """1 inside (v < 0), 0 outside, with a soft edge."""
    return 1.0 / (1.0 + np.exp(np.clip(v * sharpness, -50, 50)))


def scenes(
    count: int,
    size: int,
    seed: int,
    channels: int = 3,
    grain: float = 0.02,
    sharpness: float = 12.0,
    gaze: tuple[float, float] = (-0.18, 0.18),
) -> np.ndarray:
    """ "Real" images: aligned eyes, SimGAN's own domain (skin, sclera, iris, pupil, lid, brow).

    Position, shape, gaze, colours and lighting vary; the layout is shared, as in an aligned
    data set (the FID paper's validation used aligned faces). float32 (count, size, size,
    channels) in [0, 1]. `grain` is the sensor noise of a camera; `sharpness` of the edges
    (renders are sharper); `gaze` the range of the horizontal gaze offset (a class).
    """
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size].astype(np.float32) + 0.5) / size
    tint = np.array([1.0, 0.8, 0.65])[:channels] if channels == 3 else np.ones(1)
    out = np.empty((count, size, size, channels), np.float32)
    for i in range(count):
        image = rng.uniform(0.45, 0.75) * tint * (0.85 + 0.3 * yy[..., None])  # lit from above
        cy, cx = 0.5 + rng.normal(0, 0.04), 0.5 + rng.normal(0, 0.04)
        ry, rx = rng.uniform(0.16, 0.24), rng.uniform(0.34, 0.42)
        eye = _soft(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 - 1.0, sharpness)
        image = image * (1 - eye[..., None]) + eye[..., None] * rng.uniform(0.8, 0.95)
        gy, gx = cy + rng.normal(0, 0.03), cx + rng.uniform(*gaze)
        r_iris = ry * rng.uniform(0.8, 1.0)
        iris = _soft(np.hypot(yy - gy, xx - gx) / r_iris - 1.0, sharpness) * eye
        image = image * (1 - iris[..., None]) + iris[..., None] * rng.uniform(0.1, 0.5, channels)
        pupil = _soft(np.hypot(yy - gy, xx - gx) / (0.45 * r_iris) - 1.0, sharpness) * eye
        image = image * (1 - pupil[..., None]) + pupil[..., None] * 0.05
        lid_y = cy - ry * np.sqrt(np.clip(1 - ((xx - cx) / rx) ** 2, 0, 1))
        image = image * (1 - 0.6 * np.exp(-(((yy - lid_y) / 0.025) ** 2)))[..., None]
        brow_y = cy - ry - rng.uniform(0.12, 0.2)
        brow = np.exp(-(((yy - brow_y) / 0.04) ** 2)) * (np.abs(xx - cx) < rx)
        image = image * (1 - 0.5 * brow[..., None])
        image = image + rng.normal(0, grain, image.shape)
        out[i] = np.clip(image, 0, 1)
    return out


def gaussian_noise(images: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """(1 - alpha) X + alpha N, N uniform-range Gaussian noise clipped to [0, 1] (FID paper)."""
    rng = np.random.default_rng(seed)
    noise = np.clip(rng.normal(0.5, 0.25, images.shape), 0, 1)
    return ((1 - alpha) * images + alpha * noise).astype(np.float32)


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur with reflected edges."""
    if sigma == 0:
        return images.copy()
    radius = max(1, int(np.ceil(3 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = images.astype(np.float64)
    for axis in (1, 2):
        padded = np.pad(
            out, [(radius, radius) if a == axis else (0, 0) for a in range(4)], mode="reflect"
        )
        out = sum(
            w * np.take(padded, np.arange(i, i + images.shape[axis]), axis=axis)
            for i, w in enumerate(taps)
        )
    return out.astype(np.float32)


def black_rectangles(images: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    """Five black rectangles per image at random places, sides alpha x half the image side."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    size = images.shape[1]
    side = int(round(alpha * size / 2))
    if side == 0:
        return out
    for image in out:
        for _ in range(5):
            top, left = rng.integers(0, size - side + 1, 2)
            image[top : top + side, left : left + side] = 0.0
    return out


def swirl(images: np.ndarray, strength: float) -> np.ndarray:
    """skimage-style swirl about the centre (radius = half the side), bilinear sampling."""
    if strength == 0:
        return images.copy()
    n, size = images.shape[0], images.shape[1]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    centre = (size - 1) / 2
    dy, dx = yy - centre, xx - centre
    rho = np.hypot(dy, dx)
    radius = (size / 2) / np.log(2)
    theta = np.arctan2(dy, dx) + strength * np.exp(-rho / radius)
    sy = np.clip(centre + rho * np.sin(theta), 0, size - 1)
    sx = np.clip(centre + rho * np.cos(theta), 0, size - 1)
    y0, x0 = np.floor(sy).astype(int), np.floor(sx).astype(int)
    y1, x1 = np.minimum(y0 + 1, size - 1), np.minimum(x0 + 1, size - 1)
    fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
    out = np.empty_like(images)
    for i in range(n):
        im = images[i]
        top = im[y0, x0] * (1 - fx) + im[y0, x1] * fx
        bottom = im[y1, x0] * (1 - fx) + im[y1, x1] * fx
        out[i] = top * (1 - fy) + bottom * fy
    return out


def salt_and_pepper(images: np.ndarray, p: float, seed: int) -> np.ndarray:
    """A fraction p of pixels set to black or white (all channels)."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    hit = rng.random(images.shape[:3]) < p
    white = rng.random(images.shape[:3]) < 0.5
    out[hit & white] = 1.0
    out[hit & ~white] = 0.0
    return out


# Levels 0..3 of each disturbance, as in the FID paper's figures.
DISTURBANCES = {
    "gaussian_noise": (lambda x, a: gaussian_noise(x, a, 5), (0.0, 0.25, 0.5, 0.75)),
    "gaussian_blur": (gaussian_blur, (0.0, 1.0, 2.0, 4.0)),
    "black_rectangles": (lambda x, a: black_rectangles(x, a, 6), (0.0, 0.25, 0.5, 0.75)),
    "swirl": (swirl, (0.0, 1.0, 2.0, 4.0)),
    "salt_and_pepper": (lambda x, p: salt_and_pepper(x, p, 7), (0.0, 0.1, 0.2, 0.3)),
}


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
