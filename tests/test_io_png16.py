"""The 16-bit colour PNG codec (refinekit.io.png16): the vectorised row unfilters on large
images, every filter type, and mixes of them, against the pixels that were encoded and against
Pillow (which reads these files at 8 bits: the high bytes must agree)."""

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinekit.io.png16 import encode_png16, read_png16, unfilter


def _forward_filter(raw: np.ndarray, kinds, bpp: int) -> np.ndarray:
    """(H, stride) uint8 bytes -> (H, stride + 1) rows filtered as PNG specifies (reference:
    each byte's predictor from the unfiltered neighbours, vectorised per row)."""
    raw = raw.astype(np.int64)
    rows = []
    for y, kind in enumerate(kinds):
        line = raw[y]
        up = raw[y - 1] if y else np.zeros_like(line)
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        if kind == 0:
            predictor = np.zeros_like(line)
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = up
        elif kind == 3:
            predictor = (left + up) // 2
        else:
            pa, pb, pc = (
                np.abs(up - up_left),
                np.abs(left - up_left),
                np.abs(left + up - 2 * up_left),
            )
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        rows.append(np.concatenate([[kind], (line - predictor) % 256]).astype(np.uint8))
    return np.stack(rows)


def _png(pixels: np.ndarray, kinds) -> bytes:
    h, w, c = pixels.shape
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * 2 * c)
    rows = _forward_filter(raw, kinds, 2 * c)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    colour_type = {2: 4, 3: 2, 4: 6}[c]
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)),
            chunk(b"IDAT", zlib.compress(rows.tobytes(), 1)),
            chunk(b"IEND", b""),
        ]
    )


def _photo(rng, h, w, c):
    """Smooth gradients plus noise: Paeth picks each of its three neighbours somewhere."""
    y, x = np.mgrid[0:h, 0:w]
    base = (y * 97 + x * 61)[..., None] + np.arange(c) * 5000
    noise = rng.integers(0, 300, (h, w, c))
    flat = rng.random((h, w, 1)) < 0.2  # some exact ties
    return np.where(flat, 40000, (base + noise) % 65536).astype(np.uint16)


def test_a_large_paeth_filtered_image_decodes_exactly_and_agrees_with_pillow():
    rng = np.random.default_rng(0)
    pixels = _photo(rng, 300, 400, 3)
    data = _png(pixels, [4] * 300)
    decoded = read_png16(Path("large.png"), data)
    np.testing.assert_array_equal(decoded, pixels)
    with Image.open(io.BytesIO(data)) as im:  # libpng-free reference: Pillow's own unfilter
        eight = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(eight, (pixels >> 8).astype(np.uint8))


@pytest.mark.parametrize("channels", [2, 3, 4])
@pytest.mark.parametrize(
    "pattern",
    [
        [3],  # Average everywhere
        [4, 4, 3, 3],
        [0, 1, 2, 3, 4],
        [4] + [1] * 30,  # blocks further apart than the width: decoded separately
        [2, 2, 4, 1, 1, 1, 3, 0],
    ],
)
def test_every_mix_of_row_filters_decodes_exactly(channels, pattern):
    rng = np.random.default_rng(len(pattern) * channels)
    h, w = 67, 23
    pixels = _photo(rng, h, w, channels)
    kinds = [pattern[y % len(pattern)] for y in range(h)]
    np.testing.assert_array_equal(read_png16(Path("mix.png"), _png(pixels, kinds)), pixels)


@pytest.mark.parametrize("shape", [(1, 1), (1, 40), (40, 1), (2, 2)])
def test_tiny_and_thin_images(shape):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 65536, (*shape, 4), dtype=np.uint16)
    for pattern in ([3], [4], [4, 3, 1, 2, 0]):
        kinds = [pattern[y % len(pattern)] for y in range(shape[0])]
        np.testing.assert_array_equal(read_png16(Path("t.png"), _png(pixels, kinds)), pixels)


def test_unfilter_of_random_bytes_matches_the_definition():
    """Random filtered bytes (not from an image): unfilter then refilter gives them back."""
    rng = np.random.default_rng(5)
    h, stride, bpp = 29, 6 * 13, 6
    kinds = rng.integers(0, 5, h)
    lines = rng.integers(0, 256, (h, stride), dtype=np.uint8)
    decoded = unfilter(kinds, lines, bpp)
    np.testing.assert_array_equal(_forward_filter(decoded, kinds, bpp)[:, 1:], lines)


def test_encoder_output_reads_back():
    rng = np.random.default_rng(6)
    for channels in (2, 3, 4):
        pixels = rng.integers(0, 65536, (9, 14, channels), dtype=np.uint16)
        data = encode_png16(pixels, dpi=(72.0, 72.0))
        np.testing.assert_array_equal(read_png16(Path("e.png"), data), pixels)
