"""Drawing and degradation primitives for the harness cases (NumPy + Pillow + SciPy only).

Images are float32 arrays in [0, 1]: (H, W) gray or (H, W, 3) RGB. Geometry is given in unit
coordinates (0..1, y down) and drawn 4x supersampled, then box-filtered to the output size.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

SUPERSAMPLE = 4


def affine(rng: np.random.Generator, rot_deg: float, scale: tuple, shift: float, shear=0.0):
    """A random 2x3 affine map about the image centre, in unit coordinates."""
    angle = np.deg2rad(rng.uniform(-rot_deg, rot_deg))
    s = rng.uniform(*scale)
    sh = rng.uniform(-shear, shear)
    c, si = np.cos(angle), np.sin(angle)
    m = s * np.array([[c, -si], [si, c]]) @ np.array([[1.0, sh], [0.0, 1.0]])
    t = rng.uniform(-shift, shift, size=2)
    return np.concatenate([m, (0.5 + t - m @ np.array([0.5, 0.5]))[:, None]], axis=1)


def apply(matrix: np.ndarray, points) -> np.ndarray:
    """Map (N, 2) unit points through a 2x3 affine matrix."""
    p = np.asarray(points, dtype=np.float64)
    return p @ matrix[:, :2].T + matrix[:, 2]


def ellipse(cx, cy, rx, ry, start=0.0, end=360.0, n=48) -> np.ndarray:
    """Points on an ellipse arc, angles in degrees (screen coordinates, y down)."""
    t = np.deg2rad(np.linspace(start, end, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _canvas(size: int):
    image = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
    return image, ImageDraw.Draw(image)


def _downsample(image: Image.Image, size: int) -> np.ndarray:
    a = np.asarray(image, dtype=np.float32) / 255.0
    return a.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))


def fill_polygons(parts: list[tuple[np.ndarray, int]], size: int) -> np.ndarray:
    """Coverage mask (size, size) of polygons drawn in order; fill 1 adds, 0 cuts a hole."""
    image, draw = _canvas(size)
    k = size * SUPERSAMPLE
    for points, value in parts:
        draw.polygon([tuple(p) for p in np.asarray(points) * k], fill=255 * value)
    return _downsample(image, size)


def brush(strokes: list[np.ndarray], radii: list[np.ndarray], size: int) -> np.ndarray:
    """Coverage mask of polylines drawn as discs of a per-point radius (unit coordinates)."""
    image, draw = _canvas(size)
    k = size * SUPERSAMPLE
    for points, radius in zip(strokes, radii, strict=True):
        for (x, y), r in zip(points * k, np.broadcast_to(radius, len(points)) * k, strict=True):
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    return _downsample(image, size)


def resample(points: np.ndarray, step: float) -> np.ndarray:
    """Points along a polyline every `step` units (dense enough for disc brushing)."""
    points = np.asarray(points, dtype=np.float64)
    seg = np.linalg.norm(np.diff(points, axis=0), axis=1)
    dist = np.concatenate([[0.0], np.cumsum(seg)])
    n = max(int(dist[-1] / step) + 1, 2)
    at = np.linspace(0.0, dist[-1], n)
    return np.stack([np.interp(at, dist, points[:, i]) for i in range(2)], axis=1)


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise, rescaled to unit standard deviation."""
    n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return n / (n.std() + 1e-8)


def pink_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """1/f (pink) noise (size, size), zero mean, unit standard deviation."""
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = (rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))) / radius
    spectrum[0, 0] = 0.0
    n = np.real(np.fft.ifft2(spectrum))
    return n / (n.std() + 1e-8)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the spatial axes only."""
    sig = (sigma, sigma) + (0,) * (image.ndim - 2)
    return ndimage.gaussian_filter(image, sig, mode="nearest")


def low_resolution(image: np.ndarray, small: int) -> np.ndarray:
    """Area-downsample to small x small, bilinear back up: a low-resolution sensor."""
    size = image.shape[0]
    mode = "RGB" if image.ndim == 3 else "L"
    pil = Image.fromarray(np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8), mode)
    pil = pil.resize((small, small), Image.Resampling.BOX).resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(pil, dtype=np.float32) / 255.0


def vignette(size: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative radial falloff 1 - strength * r^2 about a jittered centre."""
    c = 0.5 + rng.uniform(-0.15, 0.15, size=2)
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size
    return 1.0 - strength * ((x - c[0]) ** 2 + (y - c[1]) ** 2) / 0.5


def gradient(size: int, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative linear illumination ramp of the given peak-to-peak strength."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = (np.mgrid[0:size, 0:size] + 0.5) / size - 0.5
    ramp = x * np.cos(angle) + y * np.sin(angle)
    return 1.0 + strength * ramp / 0.71


def quantise(image: np.ndarray, levels: int) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * (levels - 1)) / (levels - 1)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
