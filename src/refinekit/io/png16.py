"""16-bit colour PNG, which Pillow reads and writes at 8 bits only: header, decoder, encoder.

The decoder reverses the PNG row filters with NumPy. None, Sub and Up are one vector
operation per row. Average and Paeth predict each byte from the decoded byte on its left, so
a row cannot be done at once; but a pixel depends only on its left, upper and upper-left
neighbours, so all pixels on one anti-diagonal (x + y constant) are independent. A block of
rows holding Average/Paeth rows is decoded one anti-diagonal at a time (rows + width - 1
vector steps instead of one Python step per byte), on a skewed copy in which each
anti-diagonal is a column, so every step works on plain slices.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ImageReadError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type (not palette) -> channels


@dataclass(frozen=True)
class PngHeader:
    width: int
    height: int
    bits: int
    colour_type: int  # 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
    interlace: int


def png_header(path: Path, data: bytes | None = None) -> PngHeader | None:
    """The IHDR of a PNG file (or of its content `data`), or None for anything else."""
    if data is not None:
        head = data[:33]
    else:
        with open(path, "rb") as f:
            head = f.read(33)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        return None
    width, height, bits, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    return PngHeader(width, height, bits, colour_type, interlace)


def read_png16(path: Path, data: bytes | None = None) -> np.ndarray:
    """Decode a 16-bit colour PNG (colour type 2, 4 or 6) to HxWxC uint16.

    Chunks are CRC-checked; IDAT is inflated up to the size the header implies (no more, so a
    zlib bomb cannot blow up memory) and each row's filter is reversed (`unfilter`).
    Interlaced (Adam7) files are refused with ImageReadError.
    """
    path = Path(path)
    data = path.read_bytes() if data is None else data
    header, idat = _chunks(path, data)
    width, height, bits, colour_type, _, _, interlace = header
    channels = {2: 3, 4: 2, 6: 4}.get(colour_type)
    if bits != 16 or channels is None:
        raise ImageReadError(f"{path}: read_png16 reads 16-bit colour PNGs only")
    if interlace:
        raise ImageReadError(
            f"{path}: interlaced (Adam7) 16-bit colour PNG is not supported; "
            "save it without interlacing"
        )
    bpp = 2 * channels
    stride = width * bpp
    expected = height * (stride + 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(idat), expected)
    except zlib.error as exc:
        raise ImageReadError(f"{path}: damaged PNG data ({exc})") from exc
    if len(raw) < expected:
        raise ImageReadError(f"{path}: truncated PNG data ({len(raw)} of {expected} bytes)")
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride + 1)
    if height and rows[:, 0].max() > 4:
        raise ImageReadError(f"{path}: damaged PNG data (row filter type {rows[:, 0].max()})")
    out = unfilter(rows[:, 0], rows[:, 1:], bpp)
    return out.view(">u2").reshape(height, width, channels).astype(np.uint16)


def _chunks(path: Path, data: bytes) -> tuple[tuple[int, ...], list[bytes]]:
    """(IHDR fields, IDAT bodies) of a PNG file's content, every chunk CRC-checked."""
    header, idat, pos = None, [], 8
    if data[:8] != PNG_SIGNATURE:
        raise ImageReadError(f"{path}: not a PNG file")
    while True:
        if pos + 12 > len(data):
            raise ImageReadError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) < length or len(crc) < 4:
            raise ImageReadError(f"{path}: truncated PNG (in a {kind!r} chunk)")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise ImageReadError(f"{path}: damaged PNG (CRC mismatch in a {kind!r} chunk)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body[:13])
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ImageReadError(f"{path}: PNG without an IHDR chunk")
    return header, idat


def unfilter(kinds: np.ndarray, lines: np.ndarray, bpp: int) -> np.ndarray:
    """Reverse PNG row filters: `kinds` (H,) filter types 0-4, `lines` (H, stride) uint8
    filtered bytes, `bpp` bytes per pixel -> (H, stride) uint8 decoded bytes.

    Rows go one at a time, except blocks around Average/Paeth rows, which go by anti-diagonals
    (`_unfilter_diagonals`). A block costs rows + width - 1 vector steps, so blocks closer than
    a row's width in pixels are merged: the rows between them cost one step each either way.
    """
    height, stride = lines.shape
    width = max(1, stride // bpp)
    out = np.empty((height, stride), np.uint8)
    prior = np.zeros(stride, np.uint8)
    y = 0
    for start, end in _blocks(kinds, width):
        for row in range(y, start):  # None, Sub and Up rows: one vector operation each
            kind, line = kinds[row], lines[row]
            if kind == 0:
                out[row] = line
            elif kind == 1:  # Sub: a running sum, per byte of the pixel, modulo 256
                out[row] = np.cumsum(line.reshape(-1, bpp), axis=0, dtype=np.uint8).reshape(-1)
            else:  # Up
                out[row] = line + prior
            prior = out[row]
        if end > start:
            out[start:end] = _unfilter_diagonals(kinds[start:end], lines[start:end], prior, bpp)
            prior = out[end - 1]
        y = end
    return out


def _blocks(kinds: np.ndarray, width: int) -> list[tuple[int, int]]:
    """[start, end) row blocks that hold every Average/Paeth row, then (H, H) to close."""
    blocks: list[tuple[int, int]] = []
    for row in np.flatnonzero(kinds >= 3).tolist():
        if blocks and row - blocks[-1][1] < width:
            blocks[-1] = (blocks[-1][0], row + 1)
        else:
            blocks.append((row, row + 1))
    return [*blocks, (len(kinds), len(kinds))]


def _unfilter_diagonals(
    kinds: np.ndarray, lines: np.ndarray, prior: np.ndarray, bpp: int
) -> np.ndarray:
    """Decode n consecutive rows of any filter types (`kinds`, (n,)), by anti-diagonals.

    lines: (n, stride) uint8 filtered bytes; prior: (stride,) the decoded row above them.
    Row i's pixel x sits at column x + i + 2 of a skewed (n + 1, n + width + 1, bpp) array
    whose row 0 holds `prior` (at column x + 1) and whose other cells are zero, so for the
    anti-diagonal d = x + i the left (a), upper (b) and upper-left (c) neighbours are columns
    d + 1, d + 1 and d, rows i + 1, i and i, and PNG's "0 outside the image" is the zero fill.
    """
    n, stride = lines.shape
    width = stride // bpp
    skew = np.zeros((n + 1, n + width + 1, bpp), np.int16)
    skew[0, 1 : width + 1] = prior.reshape(width, bpp)
    rows = np.arange(n)[:, None]
    columns = np.arange(width)[None, :] + rows  # d = x + i
    filtered = np.zeros((n, n + width - 1, bpp), np.int16)
    filtered[rows, columns] = lines.reshape(n, width, bpp)
    # Per-row masks, broadcast over a row's bytes; each step computes only what the block uses.
    is_paeth, is_average = (kinds == 4)[:, None], (kinds == 3)[:, None]
    is_sub, is_up = (kinds == 1)[:, None], (kinds == 2)[:, None]
    paeth_rows, average_rows = bool(is_paeth.any()), bool(is_average.any())
    simple_rows = bool((kinds < 3).any())  # None (0), Sub (left), Up (above)
    for d in range(n + width - 1):
        lo, hi = max(0, d - width + 1), min(n, d + 1)  # rows i with 0 <= d - i < width
        a = skew[lo + 1 : hi + 1, d + 1]
        b = skew[lo:hi, d + 1]
        c = skew[lo:hi, d]
        if paeth_rows:
            from_b, from_a = b - c, a - c  # a + b - c minus a, and minus b
            pa, pb, pc = np.abs(from_b), np.abs(from_a), np.abs(from_a + from_b)
            predicted = np.where(pa <= np.minimum(pb, pc), a, np.where(pb <= pc, b, c))
            if average_rows:
                predicted = np.where(is_paeth[lo:hi], predicted, (a + b) >> 1)
        else:
            predicted = (a + b) >> 1
        if simple_rows:
            predicted = np.where(
                is_up[lo:hi],
                b,
                np.where(is_sub[lo:hi], a, predicted * (is_paeth[lo:hi] | is_average[lo:hi])),
            )
        np.bitwise_and(filtered[lo:hi, d] + predicted, 0xFF, out=skew[lo + 1 : hi + 1, d + 2])
    return skew[rows + 1, columns + 2].astype(np.uint8).reshape(n, stride)


def encode_png16(pixels: np.ndarray, dpi: tuple[float, float] | None = None) -> bytes:
    """A 16-bit PNG of HxWxC uint16 `pixels` (C = 1..4), which Pillow cannot write in colour.

    Rows use the PNG "Sub" filter (byte-wise difference to the pixel on the left), computed
    with NumPy, then zlib level 6: close to what libpng gives for photographic content.
    """
    h, w, c = pixels.shape
    colour_type = COLOUR_TYPES[c]
    raw = np.ascontiguousarray(pixels.astype(">u2")).view(np.uint8).reshape(h, w * c * 2)
    bpp = 2 * c
    filtered = raw.copy()
    filtered[:, bpp:] = raw[:, bpp:] - raw[:, :-bpp]  # uint8 arithmetic wraps modulo 256
    rows = np.concatenate([np.ones((h, 1), np.uint8), filtered], axis=1)  # filter type 1

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    parts = [PNG_SIGNATURE, chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0))]
    if dpi:
        ppm = [int(d / 0.0254 + 0.5) for d in dpi]
        parts.append(chunk(b"pHYs", struct.pack(">IIB", ppm[0], ppm[1], 1)))
    parts.append(chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)))
    parts.append(chunk(b"IEND", b""))
    return b"".join(parts)
