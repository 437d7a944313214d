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


def image_spectra(images: np.ndarray) -> np.ndarray:
    """Float NxHxWxC -> (N, K) mean power per ring, averaged over channels."""
    n, height, width, channels = images.shape
    index, rings = ring_index(height, width)
    # rfft2 keeps half the plane; the columns it drops mirror the kept ones, so weighting the
    # kept coefficients by how many they stand for gives the full-plane ring means.
    weight = np.full(index.shape, 2.0)
    weight[:, 0] = 1.0
    if width % 2 == 0:
        weight[:, -1] = 1.0
    flat = index.ravel()
    weight_flat = weight.ravel()
    members = np.bincount(flat, weights=weight_flat, minlength=rings + 1)[1:]
    out = np.empty((n, rings))
    for start in range(0, n, CHUNK):
        chunk = images[start : start + CHUNK].astype(np.float64)
        chunk = chunk - chunk.mean(axis=(1, 2), keepdims=True)
        power = np.abs(np.fft.rfft2(chunk, axes=(1, 2))) ** 2  # (b, H, W//2+1, C)
        power = power.mean(axis=-1).reshape(len(chunk), -1) * weight_flat
        # Sum each image's coefficients into rings with one matrix product.
        sums = power @ _ring_matrix(flat, rings)
        out[start : start + len(chunk)] = sums / members / (height * width)
    return out


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
