"""The io layer's contracts: the format table drives encoding, and atomic_writer is atomic."""

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from refinekit.io import formats
from refinekit.io.atomic import atomic_writer, temp_path
from refinekit.io.encode import encode_image
from refinekit.io.files import is_image_path


def test_the_table_covers_every_8bit_mode_of_every_format():
    for row in formats.FORMATS:
        for mode in ("L", "LA", "RGB", "RGBA"):
            stored = mode if mode in row.modes else row.fallbacks[mode]
            assert stored in row.modes, (row.name, mode)
    assert formats.IMAGE_EXTENSIONS == tuple(s for row in formats.FORMATS for s in row.suffixes)
    assert all(is_image_path(Path("x" + s.upper())) for s in formats.BY_SUFFIX)


@pytest.mark.parametrize("suffix", formats.IMAGE_EXTENSIONS)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_each_row_encodes_in_the_mode_its_table_says(suffix, channels):
    row = formats.format_of(suffix)
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    pixels = np.random.default_rng(channels).integers(0, 256, (6, 5, channels), dtype=np.uint8)
    data = encode_image(pixels, suffix)
    stored = mode if mode in row.modes else row.fallbacks[mode]
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == row.name
        if row.name == "BMP" and stored == "RGBA":
            # Pillow writes RGBA as a 32-bit BMP and reads such files back as RGB (the 4th
            # byte is padding to most readers): check the header's bits per pixel instead.
            assert int.from_bytes(data[28:30], "little") == 32
        else:
            assert im.mode == stored


def test_atomic_writer_publishes_only_a_complete_file(tmp_path):
    target = tmp_path / "sub" / "arrays.npz"
    with atomic_writer(target) as f:
        np.savez(f, a=np.arange(5))
        assert not target.exists() and temp_path(target).exists()
    np.testing.assert_array_equal(np.load(target)["a"], np.arange(5))

    with pytest.raises(RuntimeError), atomic_writer(target) as f:
        f.write(b"half a file")
        raise RuntimeError("killed mid-write")
    np.testing.assert_array_equal(np.load(target)["a"], np.arange(5))  # the old file is intact
    assert sorted(p.name for p in target.parent.iterdir()) == ["arrays.npz"]  # no temporary


def test_docs_refine_lists_every_format_of_the_table():
    docs = (Path(__file__).parents[1] / "docs" / "refine.md").read_text(encoding="utf-8")
    rows = [line for line in docs.splitlines() if line.startswith("| `.")]
    listed = {suffix.strip("` ") for line in rows for suffix in line.split("|")[1].split(",")}
    assert listed == set(formats.IMAGE_EXTENSIONS)
