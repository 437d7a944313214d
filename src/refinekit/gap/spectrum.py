"""Radially averaged power spectra, and their distance per frequency band.

Per image and channel: subtract the mean, |FFT|^2, average over rings of equal radial
frequency, then average over channels. A set's spectrum is the mean of its images' spectra;
two sets are compared on log10 power, so the distance is scale-free and an artifact that
adds power at some frequencies (checkerboards, ringing, noise) shows in its band.

Frequencies are normalised so 1 is the Nyquist frequency of the shorter side; ring k of
K = min(H, W) // 2 rings holds the frequencies that round to k / K (corners beyond 1 are left
out, as is the DC term). Bands: low (0, 1/3], mid (1/3, 2/3], high (2/3, 1].
"""

from __future__ import annotations

import numpy as np

BANDS = {"low": (0.0, 1 / 3), "mid": (1 / 3, 2 / 3), "high": (2 / 3, 1.0)}
SECTORS = 8  # orientation sectors of pi / 8 for the oriented spectrum (rotation, motion blur)
CHUNK = 512  # images per FFT call: bounds the memory of the complex intermediate


def ring_index(height: int, width: int) -> tuple[np.ndarray, int]:
    """Ring number (1..K, 0 = left out) of each rfft2 coefficient, and K."""
    rings = min(height, width) // 2
    fy = np.fft.fftfreq(height)[:, None] / 0.5
    fx = np.fft.rfftfreq(width)[None, :] / 0.5
    radius = np.sqrt(fy**2 + fx**2)
    index = np.rint(radius * rings).astype(np.int64)
    index[(index > rings) | (radius == 0)] = 0
    return index, rings


def ring_frequencies(rings: int) -> np.ndarray:
    """Normalised frequency (fraction of Nyquist) of rings 1..K."""
    return np.arange(1, rings + 1) / rings


def cell_index(height: int, width: int) -> tuple[np.ndarray, int]:
    """Oriented-spectrum cell (1..3 * SECTORS, 0 = left out) of each rfft2 coefficient.

    Cell = band (low, mid, high, as BANDS) x orientation sector of the frequency vector
    (mod pi, so a coefficient and its mirror share a sector).
    """
    index, rings = ring_index(height, width)
    fy = np.fft.fftfreq(height)[:, None] / 0.5
    fx = np.fft.rfftfreq(width)[None, :] / 0.5
    angle = np.mod(np.arctan2(fy, fx) + np.zeros_like(fy * fx), np.pi)
    sector = np.minimum((angle / np.pi * SECTORS).astype(np.int64), SECTORS - 1)
    freq = index / max(rings, 1)
    band = np.digitize(freq, [1 / 3 + 1e-12, 2 / 3 + 1e-12])  # 0, 1, 2
    cells = band * SECTORS + sector + 1
    cells[index == 0] = 0
    return cells, 3 * SECTORS


def image_spectra(images: np.ndarray) -> np.ndarray:
    """Float NxHxWxC -> (N, K) mean power per ring, averaged over channels."""
    return image_power(images)[0]


def image_power(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float NxHxWxC -> ((N, K) mean power per ring, (N, 3 * SECTORS) per oriented cell)."""
    n, height, width, channels = images.shape
    index, rings = ring_index(height, width)
    cells, n_cells = cell_index(height, width)
    # rfft2 keeps half the plane; the columns it drops mirror the kept ones, so weighting the
    # kept coefficients by how many they stand for gives the full-plane ring means.
    weight = np.full(index.shape, 2.0)
    weight[:, 0] = 1.0
    if width % 2 == 0:
        weight[:, -1] = 1.0
    flat = index.ravel()
    weight_flat = weight.ravel()
    members = np.bincount(flat, weights=weight_flat, minlength=rings + 1)[1:]
    cell_flat = cells.ravel()
    cell_members = np.maximum(
        np.bincount(cell_flat, weights=weight_flat, minlength=n_cells + 1)[1:], 1.0
    )
    ring_matrix = _ring_matrix(flat, rings)
    cell_matrix = _ring_matrix(cell_flat, n_cells)
    out = np.empty((n, rings))
    oriented = np.empty((n, n_cells))
    for start in range(0, n, CHUNK):
        chunk = images[start : start + CHUNK].astype(np.float64)
        chunk = chunk - chunk.mean(axis=(1, 2), keepdims=True)
        power = np.abs(np.fft.rfft2(chunk, axes=(1, 2))) ** 2  # (b, H, W//2+1, C)
        power = power.mean(axis=-1).reshape(len(chunk), -1) * weight_flat
        # Sum each image's coefficients into rings with one matrix product.
        sums = power @ ring_matrix
        out[start : start + len(chunk)] = sums / members / (height * width)
        oriented[start : start + len(chunk)] = power @ cell_matrix / cell_members / (height * width)
    return out, oriented


def _ring_matrix(flat_index: np.ndarray, rings: int) -> np.ndarray:
    """(coefficients, K) 0/1 matrix assigning each coefficient to its ring (ring 0 dropped)."""
    matrix = np.zeros((len(flat_index), rings + 1))
    matrix[np.arange(len(flat_index)), flat_index] = 1.0
    return matrix[:, 1:]


def set_log_spectrum(spectra: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """log10 of the count-weighted mean spectrum per replicate: (R, n) x (n, K) -> (R, K)."""
    counts = counts.astype(np.float64)
    mean = counts @ spectra / counts.sum(axis=1, keepdims=True)
    return np.log10(np.maximum(mean, 1e-20))


def oriented_distance(log_x: np.ndarray, log_y: np.ndarray) -> np.ndarray:
    """Mean |log10 power difference| over the oriented cells that hold coefficients -> (R,)."""
    used = np.isfinite(log_y).all(axis=0) & (log_y > -19).any(axis=0)
    return np.abs(log_x[..., used] - log_y[..., used]).mean(axis=-1)


def band_distances(log_x: np.ndarray, log_y: np.ndarray) -> dict[str, np.ndarray]:
    """Mean |log10 power difference| over the rings of each band -> {band: (R,)}."""
    rings = log_x.shape[-1]
    freq = ring_frequencies(rings)
    out = {}
    for band, (low, high) in BANDS.items():
        members = (freq > low) & (freq <= high + 1e-12)
        if not members.any():  # tiny images: take the ring nearest the band's centre
            members = np.abs(freq - (low + high) / 2) == np.abs(freq - (low + high) / 2).min()
        out[band] = np.abs(log_x[..., members] - log_y[..., members]).mean(axis=-1)
    return out
