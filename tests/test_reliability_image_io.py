"""Image I/O under attack: 16-bit colour decoding, damaged files, and read -> write -> read
round trips for every format, mode and bit depth refinekit keeps (no JAX here).

The 16-bit colour PNG files are written by a small encoder in this file that can use each of
the five PNG row filters, so every branch of `io.png16.read_png16` is exercised; Pillow, which
reads these files at 8 bits, checks the high bytes independently.
"""

import io
import struct
import sys
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from refinekit.errors import ImageReadError
from refinekit.io.decode import read_image
from refinekit.io.encode import encode_image
from refinekit.io.meta import SourceMeta, probe_source
from refinekit.io.png16 import png_header
from refinekit.refine import refine_folder

RNG = np.random.default_rng(0)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png16(pixels: np.ndarray, filters=(0, 1, 2, 3, 4), interlace: int = 0) -> bytes:
    """A 16-bit PNG of HxWxC uint16 pixels whose row y uses filter filters[y % len(filters)]."""
    h, w, c = pixels.shape
    bpp = 2 * c
    raw = (
        np.ascontiguousarray(pixels.astype(">u2"))
        .view(np.uint8)
        .reshape(h, w * bpp)
        .astype(np.int64)
    )
    rows = []
    for y in range(h):
        kind = filters[y % len(filters)]
        line = raw[y]
        up = raw[y - 1] if y else np.zeros_like(line)
        left = np.concatenate([np.zeros(bpp, np.int64), line[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, np.int64), up[:-bpp]])
        if kind == 0:
            out = line
        elif kind == 1:
            out = line - left
        elif kind == 2:
            out = line - up
        elif kind == 3:
            out = line - (left + up) // 2
        else:
            p = left + up - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - up_left)
            out = line - np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, up_left))
        rows.append(np.concatenate([[kind], out % 256]).astype(np.uint8))
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    return b"".join(
        [
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, interlace)),
            _chunk(b"IDAT", zlib.compress(np.concatenate(rows).tobytes())),
            _chunk(b"IEND", b""),
        ]
    )


# ---------------------------------------------------------------------------------------------
# 16-bit colour PNG


@pytest.mark.parametrize("channels, mode", [(2, "LA"), (3, "RGB"), (4, "RGBA")])
def test_16bit_colour_png_is_decoded_at_16_bits_for_every_row_filter(tmp_path, channels, mode):
    pixels = RNG.integers(0, 65536, (11, 9, channels), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(png16(pixels))  # rows cycle through None, Sub, Up, Average, Paeth
    decoded, info = read_image(path)
    assert (info.mode, info.dtype, info.channels) == (mode, "uint16", channels)
    np.testing.assert_array_equal(decoded, pixels)
    if channels != 2:  # Pillow reads these at 8 bits (its gray+alpha 16-bit layout differs)
        with Image.open(path) as im:
            np.testing.assert_array_equal(np.asarray(im), (pixels >> 8).astype(np.uint8))


@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4])
def test_each_filter_alone_including_one_pixel_wide_images(tmp_path, kind):
    for shape in [(5, 1, 3), (1, 6, 4), (7, 4, 3)]:
        pixels = RNG.integers(0, 65536, shape, dtype=np.uint16)
        path = tmp_path / f"f{kind}_{shape[0]}x{shape[1]}.png"
        path.write_bytes(png16(pixels, filters=(kind,)))
        np.testing.assert_array_equal(read_image(path)[0], pixels)


def test_damaged_16bit_png_is_a_clear_read_error(tmp_path):
    pixels = RNG.integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    good = png16(pixels)
    cases = {
        "interlaced.png": (png16(pixels, interlace=1), "interlaced"),
        "truncated.png": (good[: len(good) - 40], "truncated"),
        "crc.png": (good[:40] + bytes([good[40] ^ 0xFF]) + good[41:], "CRC"),
        "short_data.png": (
            good[:33] + _chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + _chunk(b"IEND", b""),
            "truncated PNG data",
        ),
        "bad_filter.png": (
            good[:33]
            + _chunk(b"IDAT", zlib.compress((b"\x07" + b"\x00" * 48) * 8))
            + _chunk(b"IEND", b""),
            "filter type 7",
        ),
    }
    for name, (data, needle) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ImageReadError, match=needle) as info:
            read_image(tmp_path / name)
        assert name in str(info.value)


def test_png_header_reads_ihdr_only(tmp_path):
    (tmp_path / "a.png").write_bytes(png16(np.zeros((3, 5, 4), np.uint16)))
    header = png_header(tmp_path / "a.png")
    assert (header.width, header.height, header.bits, header.colour_type) == (5, 3, 16, 6)
    (tmp_path / "b.png").write_text("not a png")
    assert png_header(tmp_path / "b.png") is None


# ---------------------------------------------------------------------------------------------
# 16-bit colour TIFF (tifffile is optional: without it Pillow reads them at 8 bits)


def test_16bit_colour_tiff_is_decoded_at_16_bits_with_tifffile(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "contig.tif", rgb, photometric="rgb")
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    tifffile.imwrite(tmp_path / "deflate.tif", rgb, photometric="rgb", compression="zlib")
    for name in ("contig.tif", "planar.tif", "deflate.tif"):
        decoded, info = read_image(tmp_path / name)
        assert info.dtype == "uint16", name
        np.testing.assert_array_equal(decoded, rgb, err_msg=name)
    rgba = RNG.integers(0, 65536, (6, 7, 4), dtype=np.uint16)
    la = RNG.integers(0, 65536, (6, 7, 2), dtype=np.uint16)
    for name, pixels in (("rgba.tif", rgba), ("la.tif", la)):  # Pillow cannot open 16-bit LA at all
        (tmp_path / name).write_bytes(encode_image(pixels, ".tif"))
        np.testing.assert_array_equal(read_image(tmp_path / name)[0], pixels, err_msg=name)


# ---------------------------------------------------------------------------------------------
# Float and 32-bit integer images: [0, 1] and [0, 65535] are read, anything else is refused


def test_float_and_int32_tiffs_in_range_are_read_out_of_range_refused(tmp_path):
    values = RNG.integers(0, 65536, (4, 5)).astype(np.float64) / 65535
    Image.fromarray(values.astype(np.float32)).save(tmp_path / "unit.tif")
    decoded, info = read_image(tmp_path / "unit.tif")
    assert info.mode == "F" and decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded[..., 0], np.round(values * 65535).astype(np.uint16))

    Image.fromarray(np.full((4, 5), 3.5, np.float32)).save(tmp_path / "metres.tif")
    Image.fromarray(np.full((4, 5), np.nan, np.float32)).save(tmp_path / "nan.tif")
    Image.fromarray(np.full((4, 5), 70000, np.int32)).save(tmp_path / "i32.tif")
    for name, needle in (("metres.tif", r"\[3.5, 3.5\]"), ("nan.tif", "NaN"), ("i32.tif", "70000")):
        with pytest.raises(ImageReadError, match=needle):
            read_image(tmp_path / name)


# ---------------------------------------------------------------------------------------------
# Round trips: read -> encode as the source was -> read gives the same array, for every lossless
# format, mode and bit depth (JPEG and lossy WebP are lossy by design and left out).


def _tifffile_or_none():
    try:
        import tifffile
    except ImportError:
        return None
    return tifffile


# (suffix, dtype, channels, SourceMeta of the first encoding)
FORMS = [
    *[(".png", np.uint8, c, None) for c in (1, 2, 3, 4)],
    *[(".png", np.uint16, c, None) for c in (1, 2, 3, 4)],
    *[(".tif", np.uint8, c, None) for c in (1, 2, 3, 4)],
    (".tif", np.uint16, 1, SourceMeta(mode="I;16")),
    (".tif", np.uint16, 1, SourceMeta(mode="I")),
    (".tif", np.uint16, 1, SourceMeta(mode="F")),
    (".tif", np.uint16, 1, SourceMeta(mode="I;16", tiff_compression="tiff_lzw")),
    *([(".tif", np.uint16, c, None) for c in (2, 3, 4)] if _tifffile_or_none() else []),
    (".bmp", np.uint8, 1, None),
    (".bmp", np.uint8, 3, None),
    (".webp", np.uint8, 3, SourceMeta(format="WEBP", webp_lossless=True)),
    (".webp", np.uint8, 4, SourceMeta(format="WEBP", webp_lossless=True)),
]


@settings(max_examples=60, deadline=None)
@given(
    form=st.sampled_from(FORMS),
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    data=st.data(),
)
def test_read_write_read_round_trip_property(tmp_path_factory, form, height, width, data):
    suffix, dtype, channels, meta = form
    pixels = data.draw(arrays(dtype, (height, width, channels)))
    folder = tmp_path_factory.mktemp("rt")
    first = folder / f"a{suffix}"
    first.write_bytes(encode_image(pixels, suffix, meta))
    decoded, info = read_image(first)
    assert decoded.dtype == dtype and info.dtype == np.dtype(dtype).name
    np.testing.assert_array_equal(decoded, pixels)
    second = folder / f"b{suffix}"
    second.write_bytes(encode_image(decoded, suffix, probe_source(first)))
    again, _ = read_image(second)
    np.testing.assert_array_equal(again, decoded)


# ---------------------------------------------------------------------------------------------
# refine keeps 16-bit colour end to end


class _Invert:
    """A refiner that inverts its input: 1 - x is exact at 16 bits, and changes every value."""

    channels, batch_size, train_size = 3, 4, (16, 16)
    model_id = {"run": "/runs/invert", "step": 1}

    def __call__(self, images):
        return 1.0 - images


def test_refine_keeps_16bit_colour_png_and_tiff(tmp_path):
    inp = tmp_path / "in"
    inp.mkdir()
    sources = {
        "rgb.png": RNG.integers(0, 65536, (9, 7, 3), dtype=np.uint16),
        "rgba.png": RNG.integers(0, 65536, (9, 7, 4), dtype=np.uint16),
        "la.png": RNG.integers(0, 65536, (9, 7, 2), dtype=np.uint16),
    }
    for name, pixels in sources.items():
        (inp / name).write_bytes(png16(pixels))
    tifffile = _tifffile_or_none()
    if tifffile is not None:
        sources["rgb.tif"] = RNG.integers(0, 65536, (9, 7, 3), dtype=np.uint16)
        tifffile.imwrite(inp / "rgb.tif", sources["rgb.tif"], photometric="rgb")
    summary = refine_folder(inp, tmp_path / "out", _Invert())
    assert summary.failed == 0 and summary.refined == len(sources) and not summary.notes
    for name, pixels in sources.items():
        out, info = read_image(tmp_path / "out" / name)
        assert info.dtype == "uint16", name
        colour = slice(0, 3) if pixels.shape[-1] >= 3 else slice(0, 1)
        if pixels.shape[-1] == 2:  # gray + alpha: the RGB model sees gray, gives back its luma
            np.testing.assert_allclose(
                out[..., 0].astype(int), 65535 - pixels[..., 0].astype(int), atol=1
            )
        else:
            np.testing.assert_array_equal(
                out[..., colour], 65535 - pixels[..., colour], err_msg=name
            )
        if pixels.shape[-1] in (2, 4):
            np.testing.assert_array_equal(
                out[..., -1], pixels[..., -1], err_msg=name
            )  # alpha as it was
        if name.endswith(".png"):
            assert png_header(tmp_path / "out" / name).bits == 16, name


def test_png16_encoder_output_reads_back_at_16_bits(tmp_path):
    """png16.encode_png16 (what refine writes) and png16.read_png16 agree."""
    pixels = RNG.integers(0, 65536, (5, 9, 3), dtype=np.uint16)
    data = encode_image(pixels, ".png")
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB"  # Pillow alone would read it at 8 bits
    (tmp_path / "x.png").write_bytes(data)
    np.testing.assert_array_equal(read_image(tmp_path / "x.png")[0], pixels)


def test_without_tifffile_16bit_colour_tiff_is_read_at_8_bits_and_refine_says_so(
    tmp_path, monkeypatch
):
    tifffile = pytest.importorskip("tifffile")
    pixels = RNG.integers(0, 65536, (6, 7, 3), dtype=np.uint16)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "rgb16.tif", pixels, photometric="rgb")
    monkeypatch.setitem(sys.modules, "tifffile", None)  # `import tifffile` now raises ImportError
    decoded, info = read_image(tmp_path / "in" / "rgb16.tif")
    assert info.dtype == "uint8" and decoded.shape == pixels.shape
    summary = refine_folder(tmp_path / "in", tmp_path / "out", _Invert())
    assert summary.refined == 1 and any("tifffile" in note for note in summary.notes)


def test_exif_orientation_is_not_applied_and_a_multi_frame_gif_is_refused(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    Image.fromarray(RNG.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(
        tmp_path / "r.jpg", exif=exif
    )
    assert read_image(tmp_path / "r.jpg")[0].shape == (16, 24, 3)  # as stored
    frames = [Image.fromarray(np.full((4, 5, 3), 80 * i, np.uint8)) for i in range(3)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    # .gif is not scanned as an image; read directly, a multi-frame file is refused by name
    # (docs/reliability.md D4: keeping the first frame would silently drop the others).
    with pytest.raises(ImageReadError, match="a.gif: a multi-frame GIF file .3 frames"):
        read_image(tmp_path / "a.gif")
