"""3x3 convolutions by Winograd's minimal filtering F(2x2, 3x3), for forward passes on CPU.

Each 2x2 block of outputs comes from a 4x4 tile of inputs: the tiles and the kernel are
transformed once, 16 batched matrix products replace the 36 multiply-adds per channel pair of a
direct convolution (2.25x fewer), and the products are transformed back (Lavin and Gray, "Fast
Algorithms for Convolutional Neural Networks", 2016). The result differs from a direct
convolution by float32 rounding only (~1e-6 relative).

Where it pays was measured on the 2-core CPU machine (docs/performance.md): the refiner's 3x3
64->64 convolutions on cache-sized micro-batches (4 images of 35x55) run faster than XLA's own
convolution, but thinner layers (32 or 16 channels) and larger inputs (one 128x128 image) run
slower, because the transformed tiles are 4x the size of the input. So `conv_general_dilated`,
a drop-in for `jax.lax.conv_general_dilated` (it plugs into `nnx.Conv(conv_general_dilated=...)`),
takes the Winograd route only for stride-1, undilated, ungrouped, float32 3x3 "SAME" convolutions
in NHWC/HWIO with at least `MIN_FEATURES` input channels on at most `MAX_PIXELS` pixels in all,
and hands every other convolution to lax unchanged. Forward passes only: its gradient is much
slower than the direct one on XLA:CPU, so training keeps lax's convolution.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import lax

from .microbatch import PIXELS

# Measured: 64 channels gain, 32 and 16 lose (the refiner's first layer has 1 or 3).
MIN_FEATURES = 64
# Measured: a micro-batch of 4 x 35x55 (7,700 pixels) or 2 x 64x64 gains, one 128x128 image loses.
MAX_PIXELS = PIXELS

# Input, kernel and output transforms of F(2, 3): y = A^T [(G g) * (B^T d)].
B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float32)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float32)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float32)

_NHWC = lax.conv_dimension_numbers((1, 1, 1, 1), (1, 1, 1, 1), ("NHWC", "HWIO", "NHWC"))


def conv_general_dilated(
    lhs,
    rhs,
    window_strides,
    padding,
    lhs_dilation=None,
    rhs_dilation=None,
    dimension_numbers=None,
    feature_group_count=1,
    batch_group_count=1,
    precision=None,
    preferred_element_type=None,
    **kwargs,
):
    """lax.conv_general_dilated, through `conv3x3` where that applies (see the module doc)."""
    if _applies(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation,
        rhs_dilation,
        dimension_numbers,
        feature_group_count,
        batch_group_count,
        preferred_element_type,
        kwargs,
    ):
        return conv3x3(lhs, rhs, precision=precision)
    return lax.conv_general_dilated(
        lhs,
        rhs,
        window_strides,
        padding,
        lhs_dilation=lhs_dilation,
        rhs_dilation=rhs_dilation,
        dimension_numbers=dimension_numbers,
        feature_group_count=feature_group_count,
        batch_group_count=batch_group_count,
        precision=precision,
        preferred_element_type=preferred_element_type,
        **kwargs,
    )


def _applies(
    lhs,
    rhs,
    strides,
    padding,
    lhs_dilation,
    rhs_dilation,
    dimension_numbers,
    groups,
    batch_groups,
    preferred,
    kwargs,
) -> bool:
    if (
        lhs.ndim != 4
        or rhs.shape[:2] != (3, 3)
        or lhs.dtype != jnp.float32
        or rhs.dtype != jnp.float32
    ):
        return False
    if (
        tuple(strides) != (1, 1)
        or groups != 1
        or batch_groups != 1
        or preferred not in (None, jnp.float32)
    ):
        return False
    if any(d is not None and tuple(d) != (1, 1) for d in (lhs_dilation, rhs_dilation)):
        return False
    if any(value is not None for value in kwargs.values()):  # e.g. out_sharding: leave it to lax
        return False
    if not (
        padding == "SAME"
        or (not isinstance(padding, str) and [tuple(p) for p in padding] == [(1, 1), (1, 1)])
    ):
        return False
    numbers = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    n, h, w, features = lhs.shape
    return numbers == _NHWC and rhs.shape[2] == features >= MIN_FEATURES and n * h * w <= MAX_PIXELS


def conv3x3(x, kernel, precision=None):
    """A 3x3, stride-1, "SAME" convolution of NHWC `x` with HWIO `kernel`, by F(2x2, 3x3)."""
    n, h, w, _ = x.shape
    rows, cols = -(-h // 2), -(-w // 2)  # output tiles; odd sizes are padded and cropped
    padded = jnp.pad(x, ((0, 0), (1, 2 * rows + 1 - h), (1, 2 * cols + 1 - w), (0, 0)))
    # tile[a][b]: element (a, b) of every 4x4 input tile, one (n, rows, cols, c) array each
    tile = [
        [padded[:, a : a + 2 * rows : 2, b : b + 2 * cols : 2] for b in range(4)] for a in range(4)
    ]
    across = [[_combine(B_T[j], tile[a]) for j in range(4)] for a in range(4)]
    inputs = jnp.stack(
        [_combine(B_T[i], [across[a][j] for a in range(4)]) for i in range(4) for j in range(4)]
    )
    weights = jnp.einsum("ia,jb,abco->ijco", G, G, kernel, precision=precision).reshape(
        16, *kernel.shape[2:]
    )
    products = jnp.einsum("knhwc,kco->knhwo", inputs, weights, precision=precision)
    m = [[products[4 * i + j] for j in range(4)] for i in range(4)]
    across = [[_combine(A_T[q], m[i]) for q in range(2)] for i in range(4)]
    out = [[_combine(A_T[p], [across[i][q] for i in range(4)]) for q in range(2)] for p in range(2)]
    # out[p][q] is output pixel (2r + p, 2s + q) of tile (r, s): interleave, then crop the padding
    blocks = jnp.stack(
        [jnp.stack(out[p], axis=3) for p in range(2)], axis=2
    )  # n, rows, 2, cols, 2, o
    return blocks.reshape(n, 2 * rows, 2 * cols, -1)[:, :h, :w]


def _combine(coefficients, terms):
    """sum(c * t) without multiplying by 0 or +-1 (the transforms are mostly those)."""
    total = None
    for c, t in zip(coefficients, terms, strict=True):
        if c == 0:
            continue
        term = t if c == 1 else -t if c == -1 else t * float(c)
        total = term if total is None else total + term
    return total
