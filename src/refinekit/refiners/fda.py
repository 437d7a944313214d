"""Fourier domain adaptation (Yang and Soatto, CVPR 2020) as a refiner: a training-free baseline.

Each synthetic image's amplitude spectrum, per channel, has its lowest frequencies replaced by
the real training images' mean amplitude there; the phase is kept everywhere, and every higher
frequency is kept as it is. Low frequencies carry the global look (brightness, contrast over
large areas, colour cast, illumination gradients), the phase and the high frequencies carry
where edges and shapes are: the change is a smooth field added to the image, so no edge moves
and labels stay valid. The result is clipped to the image range.

The band is a centred square of frequencies |ky|, |kx| <= b cycles per image, with
b = max(1, floor(BETA * min(H, W))) at the training size: the paper's `L`, with BETA = 0.05
(their largest value, for images of a few hundred pixels; at 16x16 it would leave only the mean,
so the band always holds the first harmonic too). The table holds the mean amplitude divided by
the pixel count H * W, so an image of another size is refined over the same frequencies in
cycles per image (those it has: an image smaller than the band uses the part that fits).

The table is the only parameter; train fills it from the real training images (`fit`) and runs
no step (presets.REFINER_DEFAULTS), so the run folder holds one checkpoint. Deterministic: the
same image gives the same output.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

BETA = 0.05  # the band's half-width as a share of the shorter side (the paper's L)
FIT_CHUNK = 256  # real images per FFT while fitting, to bound memory


def half_width(size: tuple[int, int] | None) -> int:
    """The band's half-width b in cycles per image for images of `size` (H, W); 1 when unknown."""
    if size is None:
        return 1
    return max(1, int(np.floor(BETA * min(size))))


def window(n: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The frequencies -b..b that an FFT axis of length `n` holds: their indices in that axis
    (unshifted, k mod n) and in a table axis of length 2b + 1 (k + b)."""
    ks = np.arange(-b, b + 1)
    ks = ks[(ks >= -(n // 2)) & (ks <= (n - 1) // 2)]
    return ks % n, ks + b


class FourierAdapt(nnx.Module):
    """x (N, H, W, C) in [-1, 1] -> each image with the real set's low-frequency amplitude."""

    def __init__(self, channels: int, b: int):
        # A placeholder (zero amplitude: the band removed) until fit() fills it.
        self.amplitude = nnx.Param(jnp.zeros((channels, 2 * b + 1, 2 * b + 1), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        u = (x.astype(jnp.float32) + 1.0) * 0.5
        return jnp.clip(transfer(u, self.amplitude[...]), 0.0, 1.0) * 2.0 - 1.0


def transfer(u: jax.Array, table: jax.Array) -> jax.Array:
    """Images u (N, H, W, C) in [0, 1] with the band's amplitude set to table (C, 2b+1, 2b+1)
    times H * W and their phase kept; not clipped."""
    _, h, w, _ = u.shape
    b = (table.shape[-1] - 1) // 2
    rows, table_rows = window(h, b)
    cols, table_cols = window(w, b)
    spectrum = jnp.fft.fft2(u, axes=(1, 2))
    band = spectrum[:, rows][:, :, cols]  # (N, r, c, C)
    target = jnp.moveaxis(table[:, table_rows][:, :, table_cols], 0, -1) * (h * w)
    # The phase of a zero coefficient is taken as 0 (jnp.angle), as in the paper's code.
    replaced = target * jnp.exp(1j * jnp.angle(band))
    spectrum = spectrum.at[:, rows[:, None], cols[None, :]].set(replaced)
    return jnp.real(jnp.fft.ifft2(spectrum, axes=(1, 2)))


def fit(real: np.ndarray, b: int) -> np.ndarray:
    """The table (C, 2b+1, 2b+1): the mean amplitude of real images (N, H, W, C) uint8/uint16
    over the band, divided by H * W (a frequency the images do not hold stays 0)."""
    top = float(np.iinfo(real.dtype).max) if np.issubdtype(real.dtype, np.integer) else 1.0
    n, h, w, c = real.shape
    rows, table_rows = window(h, b)
    cols, table_cols = window(w, b)
    total = np.zeros((len(rows), len(cols), c))
    for start in range(0, n, FIT_CHUNK):
        chunk = real[start : start + FIT_CHUNK].astype(np.float64) / top
        amplitude = np.abs(np.fft.fft2(chunk, axes=(1, 2)))
        total += amplitude[:, rows][:, :, cols].sum(axis=0)
    table = np.zeros((c, 2 * b + 1, 2 * b + 1), np.float32)
    table[:, table_rows[:, None], table_cols[None, :]] = np.moveaxis(total / (n * h * w), -1, 0)
    return table
