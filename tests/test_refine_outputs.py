"""Writing images back in their own format, mode and bit depth; atomic writes; the manifest."""

import hashlib
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, JpegImagePlugin

import refinekit.io.atomic as atomic_module
from refinekit.errors import ImageReadError
from refinekit.io.atomic import (
    Written,
    atomic_copy,
    atomic_copy_many,
    atomic_write,
    atomic_write_many,
    temp_path,
    temp_target,
)
from refinekit.io.decode import read_image, read_source
from refinekit.io.encode import encode_image
from refinekit.io.meta import SourceMeta, probe_source
from refinekit.io.png16 import encode_png16
from refinekit.refine import parse_shard, refine_folder, restore_pixels, shard_of
from refinekit.refine.manifest import ManifestWriter, Record, read_manifests, read_records


class Identity:
    channels, batch_size, train_size = 3, 4, (16, 16)
    model_id = {"run": "/runs/identity", "step": 1}

    def __call__(self, images):
        return images


RNG = np.random.default_rng(0)


def _u8(*shape):
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def _u16(*shape):
    return RNG.integers(0, 65536, shape, dtype=np.uint16)


# (file name, how to make it, Pillow mode expected in the output)
LOSSLESS = [
    ("l.png", lambda p: Image.fromarray(_u8(9, 7)).save(p), "L"),
    ("la.png", lambda p: Image.fromarray(_u8(9, 7, 2)).save(p), "LA"),
    ("rgb.png", lambda p: Image.fromarray(_u8(9, 7, 3)).save(p), "RGB"),
    ("rgba.png", lambda p: Image.fromarray(_u8(9, 7, 4)).save(p), "RGBA"),
    ("g16.png", lambda p: Image.fromarray(_u16(9, 7)).save(p), "I;16"),
    ("bits.png", lambda p: Image.fromarray(_u8(9, 7) > 127).save(p), "L"),
    ("pal.png", lambda p: Image.fromarray(_u8(9, 7, 3)).quantize(16).save(p), "RGB"),
    (
        "pal_t.png",
        lambda p: Image.fromarray(_u8(9, 7, 3)).quantize(16).save(p, transparency=0),
        "RGBA",
    ),
    ("l.tif", lambda p: Image.fromarray(_u8(9, 7)).save(p), "L"),
    ("rgba.tif", lambda p: Image.fromarray(_u8(9, 7, 4)).save(p, compression="tiff_lzw"), "RGBA"),
    ("g16.tiff", lambda p: Image.fromarray(_u16(9, 7)).save(p), "I;16"),
    ("i32.tif", lambda p: Image.fromarray(_u16(9, 7).astype(np.int32)).save(p), "I"),
    ("l.bmp", lambda p: Image.fromarray(_u8(9, 7)).save(p), "L"),
    ("rgb.bmp", lambda p: Image.fromarray(_u8(9, 7, 3)).save(p), "RGB"),
    ("rgb.webp", lambda p: Image.fromarray(_u8(9, 7, 3)).save(p, lossless=True), "RGB"),
    (
        "rgba.webp",
        lambda p: Image.fromarray(_u8(9, 7, 4)).save(p, lossless=True, exact=True),
        "RGBA",
    ),
]


@pytest.mark.parametrize("name, make, mode", LOSSLESS, ids=[c[0] for c in LOSSLESS])
def test_identity_refiner_gives_back_lossless_images_exactly(tmp_path, name, make, mode):
    (tmp_path / "in").mkdir()
    source = tmp_path / "in" / name
    make(source)
    summary = refine_folder(tmp_path / "in", tmp_path / "out", Identity())
    assert summary.refined == 1 and summary.failed == 0
    with Image.open(source) as a, Image.open(tmp_path / "out" / name) as b:
        assert (b.format, b.size, b.mode) == (a.format, a.size, mode)
    before, after = read_image(source)[0], read_image(tmp_path / "out" / name)[0]
    if mode == "RGB" and before.shape[-1] == 4:  # an opaque palette image loses only its alpha
        assert np.all(before[..., 3] == 255)
        before = before[..., :3]
    np.testing.assert_array_equal(after, before)


def test_decoding_bytes_already_read_is_decoding_the_file(tmp_path):
    """refine reads each file once and decodes those bytes: same pixels, mode and metadata."""
    cases = [
        *LOSSLESS,
        ("rgb16.png", lambda p: p.write_bytes(encode_png16(_u16(9, 7, 3))), "RGB"),
        ("q.jpg", lambda p: Image.fromarray(_u8(9, 7, 3)).save(p, quality=80, dpi=(72, 72)), "RGB"),
    ]
    for name, make, _ in cases:
        path = tmp_path / name
        make(path)
        from_path, from_bytes = read_image(path), read_image(path, path.read_bytes())
        np.testing.assert_array_equal(from_bytes[0], from_path[0], err_msg=name)
        assert from_bytes[1] == from_path[1], name
        assert probe_source(path, path.read_bytes()) == probe_source(path), name


def _source_cases():
    """Every format and mode refine meets, including those the one-open route leaves alone."""
    cmyk = lambda p: Image.fromarray(_u8(9, 7, 3)).convert("CMYK").save(p, quality=90)  # noqa: E731
    return [
        *LOSSLESS,
        ("rgb16.png", lambda p: p.write_bytes(encode_png16(_u16(9, 7, 3))), "RGB"),
        ("la16.png", lambda p: p.write_bytes(encode_png16(_u16(9, 7, 2))), "LA"),
        (
            "q.jpg",
            lambda p: Image.fromarray(_u8(9, 7, 3)).save(
                p, quality=80, dpi=(72, 72), subsampling=1
            ),
            "RGB",
        ),
        ("g.jpg", lambda p: Image.fromarray(_u8(9, 7)).save(p, progressive=True), "L"),
        ("cmyk.jpg", cmyk, "RGB"),
        ("lossy.webp", lambda p: Image.fromarray(_u8(9, 7, 4)).save(p, quality=70), "RGBA"),
        (
            "icc.png",
            lambda p: Image.fromarray(_u8(9, 7, 3)).save(
                p, icc_profile=b"not a real profile", dpi=(300, 300)
            ),
            "RGB",
        ),
    ]


def test_read_source_is_read_image_and_probe_source_in_one(tmp_path):
    """refine's one-open decoding gives the same pixels and metadata as the general route."""
    for name, make, _ in _source_cases():
        path = tmp_path / name
        make(path)
        data = path.read_bytes()
        pixels, meta = read_source(path, data)
        np.testing.assert_array_equal(pixels, read_image(path, data)[0], err_msg=name)
        assert pixels.dtype == read_image(path, data)[0].dtype and pixels.flags.c_contiguous, name
        assert meta == probe_source(path, data), name
    assert (
        read_source(tmp_path / "icc.png", (tmp_path / "icc.png").read_bytes())[1].icc_profile
        == b"not a real profile"
    )


def test_read_source_opens_common_files_once(tmp_path, monkeypatch):
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    for name, make, _ in _source_cases():
        path = tmp_path / name
        make(path)
        opened.clear()
        read_source(path, path.read_bytes())
        # 16-bit, 1-bit, palette, CMYK and TIFF files take the general route
        general = (
            name
            in ("g16.png", "bits.png", "pal.png", "pal_t.png", "rgb16.png", "la16.png", "cmyk.jpg")
            or ".tif" in name
        )
        assert (len(opened) == 1) != general, (name, len(opened))


def test_read_source_fails_as_read_image_does(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(_u8(64, 64, 3)).save(path)
    data = path.read_bytes()[:-200]  # IDAT cut short
    with pytest.raises(ImageReadError) as general:
        read_image(path, data)
    with pytest.raises(ImageReadError) as one_open:
        read_source(path, data)
    assert str(one_open.value) == str(general.value) and str(path) in str(one_open.value)


def test_atomic_write_reports_the_file_as_it_is_on_disk(tmp_path):
    target = tmp_path / "new" / "folder" / "x.bin"  # missing folders are created
    written = atomic_write(target, b"0123456789")
    stat = target.stat()
    assert (written.size, written.mtime_ns) == (
        stat.st_size,
        stat.st_mtime_ns,
    ) and written.size == 10
    copied = atomic_copy(target, tmp_path / "copy.bin")
    assert (copied.sha256, copied.size) == (written.sha256, 10)
    assert copied.mtime_ns == (tmp_path / "copy.bin").stat().st_mtime_ns


def test_lossy_formats_keep_their_settings(tmp_path):
    y, x = np.mgrid[0:24, 0:32]
    rgb = np.stack([y * 10, x * 8, 255 - x * 4], -1).astype(np.uint8)  # smooth: compresses well
    (tmp_path / "in").mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the stored pixels are not transposed, so keep it
    Image.fromarray(rgb).save(
        tmp_path / "in" / "a.jpg", quality=90, subsampling=0, exif=exif, dpi=(300, 300)
    )
    Image.fromarray(rgb).convert("L").save(tmp_path / "in" / "g.jpeg", quality=90, progressive=True)
    Image.fromarray(np.dstack([rgb, _u8(24, 32)])).save(tmp_path / "in" / "lossy.webp", quality=90)
    refine_folder(tmp_path / "in", tmp_path / "out", Identity(), jpeg_quality=97)
    out = tmp_path / "out"
    with Image.open(out / "a.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == 0 and im.getexif()[0x0112] == 6
        assert round(im.info["dpi"][0]) == 300
    with Image.open(out / "g.jpeg") as im:
        assert im.mode == "L" and im.info.get("progressive")
    meta = probe_source(out / "lossy.webp")
    assert meta.webp_lossless is False and meta.mode == "RGBA"
    for name in ("a.jpg", "g.jpeg", "lossy.webp"):
        a, b = read_image(tmp_path / "in" / name)[0], read_image(out / name)[0]
        assert np.abs(a.astype(int) - b.astype(int))[..., :3].mean() < 3, name
    np.testing.assert_array_equal(
        read_image(out / "lossy.webp")[0][..., 3],
        read_image(tmp_path / "in" / "lossy.webp")[0][..., 3],
    )
    assert probe_source(tmp_path / "in" / "lossy.webp").webp_lossless is False


def test_jpeg_quality_changes_the_jpeg(tmp_path):
    pixels = _u8(32, 32, 3)
    small = encode_image(pixels, ".jpg", jpeg_quality=20)
    large = encode_image(pixels, ".jpg", jpeg_quality=100)
    assert len(small) < len(large)


def _decode_png16(data: bytes) -> np.ndarray:
    """A reference decoder for encode_png16's output (filter type 1 rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.setdefault(kind, b"")
        chunks[kind] += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    w, h, depth, colour_type = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert depth == 16
    c = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + w * c * 2)
    assert np.all(rows[:, 0] == 1)
    raw = rows[:, 1:].copy()
    for x in range(2 * c, raw.shape[1]):
        raw[:, x] += raw[:, x - 2 * c]
    return raw.view(">u2").reshape(h, w, c).astype(np.uint16)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_png16_encoder_round_trips(channels):
    pixels = _u16(5, 9, channels)
    data = encode_png16(pixels, dpi=(72, 72))
    np.testing.assert_array_equal(_decode_png16(data), pixels)
    if channels == 3:  # Pillow reads it (at 8 bits: a limit of its 16-bit colour support)
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode == "RGB" and im.size == (9, 5)
            np.testing.assert_array_equal(np.asarray(im), (pixels >> 8).astype(np.uint8))


def test_tiff16_colour_round_trips():
    tifffile = pytest.importorskip("tifffile")
    for channels in (3, 4):
        pixels = _u16(5, 9, channels)
        data = encode_image(pixels, ".tif", SourceMeta(tiff_compression="tiff_lzw"))
        np.testing.assert_array_equal(tifffile.imread(io.BytesIO(data)), pixels)


@settings(max_examples=40, deadline=None)
@given(
    pixels=st.one_of(
        arrays(
            np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 3, 4]))
        ),
        arrays(np.uint16, st.tuples(st.integers(1, 6), st.integers(1, 6), st.just(1))),
    ),
    suffix=st.sampled_from([".png", ".tif"]),
)
def test_lossless_round_trip_property(tmp_path_factory, pixels, suffix):
    path = tmp_path_factory.mktemp("rt") / f"x{suffix}"
    path.write_bytes(encode_image(pixels, suffix))
    decoded, info = read_image(path)
    np.testing.assert_array_equal(decoded, pixels)


@settings(max_examples=40, deadline=None)
@given(
    original=st.one_of(
        arrays(
            np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 2, 3, 4]))
        ),
        arrays(np.uint16, st.tuples(st.integers(1, 5), st.integers(1, 5), st.sampled_from([1, 3]))),
    ),
    channels=st.sampled_from([1, 3]),
)
def test_restore_pixels_inverts_the_model_input(original, channels):
    """An identity refiner gives back the original (to one level), alpha bit-exact."""
    from refinekit.refine import model_input

    restored = restore_pixels(model_input(original, channels), original)
    assert restored.dtype == original.dtype and restored.shape == original.shape
    colour_in = original[..., : 3 if original.shape[-1] >= 3 else 1].astype(np.int64)
    colour_out = restored[..., : colour_in.shape[-1]].astype(np.int64)
    assert np.abs(colour_out - colour_in).max() <= 1
    if original.shape[-1] in (2, 4):
        np.testing.assert_array_equal(restored[..., -1], original[..., -1])
    if channels == original.shape[-1] or (channels == 3 and original.shape[-1] == 4):
        np.testing.assert_array_equal(restored, original)


# ---------------------------------------------------------------------------------------------
# Atomic writes


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "x.png"
    written = atomic_write(target, b"first")
    assert target.read_bytes() == b"first" and written.size == 5
    atomic_write(target, b"second version")
    assert target.read_bytes() == b"second version"
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]
    assert temp_target(temp_path(target).name) == "x.png"
    assert temp_path(target).parent == target.parent and temp_path(target).name.startswith(".")
    assert temp_target("x.png") is None and temp_target(".x.png.refinekit-tmp-") is None


def test_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("refinekit.io.atomic.os.replace", broken_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"new")
    with pytest.raises(OSError):
        atomic_copy(target, tmp_path / "copy.json")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def _sync_counters(monkeypatch, syncfs_result=0, fail_fd_sync=None):
    """Count syncfs calls (answering `syncfs_result`, or None: no syncfs) and per-file syncs."""
    calls = {"syncfs": 0, "file": []}

    def syncfs(fd):
        calls["syncfs"] += 1
        return syncfs_result

    def sync_file(fd):
        calls["file"].append(fd)
        if fail_fd_sync is not None and len(calls["file"]) == fail_fd_sync:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(atomic_module, "_syncfs", lambda: None if syncfs_result is None else syncfs)
    monkeypatch.setattr(atomic_module, "sync_file", sync_file)
    return calls


def test_atomic_write_many_writes_each_file_as_atomic_write_does_with_one_sync(
    tmp_path, monkeypatch
):
    calls = _sync_counters(monkeypatch)
    items = [
        (tmp_path / "a.png", b"alpha"),
        (tmp_path / "sub" / "b.png", b"bravo!"),
        (tmp_path / "c.png", b""),
    ]
    results = atomic_write_many(items)
    assert calls == {"syncfs": 1, "file": []}  # one filesystem: one syncfs, no fdatasync
    for (path, data), written in zip(items, results, strict=True):
        stat = path.stat()
        assert path.read_bytes() == data
        assert written == Written(hashlib.sha256(data).hexdigest(), stat.st_size, stat.st_mtime_ns)
    copies = atomic_copy_many([(path, tmp_path / "copies" / path.name) for path, _ in items])
    assert calls["syncfs"] == 2 and [w.sha256 for w in copies] == [w.sha256 for w in results]
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["a.png", "b.png", "c.png"]
    assert not [p for p in tmp_path.rglob("*") if temp_target(p.name)]


@pytest.mark.parametrize("syncfs_result", [None, -1])  # no syncfs (not Linux), or syncfs failed
def test_without_syncfs_each_file_is_fdatasynced_and_a_failure_is_its_own(
    tmp_path, monkeypatch, syncfs_result
):
    calls = _sync_counters(monkeypatch, syncfs_result=syncfs_result, fail_fd_sync=2)
    (tmp_path / "b.png").write_bytes(b"old b")
    items = [(tmp_path / name, name.encode()) for name in ("a.png", "b.png", "c.png")]
    results = atomic_write_many(items)
    assert len(calls["file"]) == 3
    assert isinstance(results[1], OSError) and "Input/output error" in str(results[1])
    assert (tmp_path / "b.png").read_bytes() == b"old b"  # not replaced by an unsynced file
    assert [(tmp_path / n).read_bytes() for n in ("a.png", "c.png")] == [b"a.png", b"c.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png", "c.png"]


def test_atomic_write_many_fails_one_file_and_writes_the_others(tmp_path, monkeypatch):
    _sync_counters(monkeypatch)
    (tmp_path / "blocker").write_text("a file where a folder should be")
    items = [
        (tmp_path / "ok1.png", b"1"),
        (tmp_path / "blocker" / "x.png", b"2"),
        (tmp_path / "ok2.png", b"3"),
    ]
    results = atomic_write_many(items)
    assert isinstance(results[1], OSError) and not isinstance(results[0], OSError)
    assert (tmp_path / "ok1.png").read_bytes() == b"1" and (
        tmp_path / "ok2.png"
    ).read_bytes() == b"3"
    missing = atomic_copy_many(
        [(tmp_path / "nope.png", tmp_path / "n.png"), (tmp_path / "ok1.png", tmp_path / "o.png")]
    )
    assert isinstance(missing[0], FileNotFoundError) and (tmp_path / "o.png").read_bytes() == b"1"
    assert not [p for p in tmp_path.rglob("*") if temp_target(p.name)]


def test_an_interrupt_while_writing_a_group_leaves_no_temporary_files(tmp_path, monkeypatch):
    _sync_counters(monkeypatch)

    def interrupted(files):
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_module, "sync_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_many([(tmp_path / "a.png", b"a"), (tmp_path / "b.png", b"b")])
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Manifest and shards


def test_manifest_survives_a_torn_last_line(tmp_path):
    path = tmp_path / "refinekit-manifest.jsonl"
    with ManifestWriter(path) as writer:
        writer.append(Record("a.png", "a.png", "refined", output_size=3))
        writer.append(Record("b.png", "b.png", "refined", output_size=4))
    with open(path, "ab") as f:
        f.write(b'{"input": "c.png", "outp')  # what a power cut mid-append could leave
    with ManifestWriter(path) as writer:
        writer.append(Record("c.png", None, "failed", error="bad"))
    records = read_records(path)
    assert [r.input for r in records] == ["a.png", "b.png", "c.png"]
    assert all(json.loads(line) for line in path.read_text().splitlines()[-1:])
    assert read_manifests(tmp_path)["c.png"][0].action == "failed"


def test_last_record_per_manifest_wins(tmp_path):
    with ManifestWriter(tmp_path / "refinekit-manifest.jsonl") as writer:
        writer.append(Record("a.png", "a.png", "refined"))
        writer.append(Record("a.png", None, "failed", error="x"))
    with ManifestWriter(tmp_path / "refinekit-manifest.shard-1-of-2.jsonl") as writer:
        writer.append(Record("a.png", "a.png", "refined"))
    current = read_manifests(tmp_path)
    assert sorted(r.action for r in current["a.png"]) == ["failed", "refined"]


def test_shard_assignment_is_stable_and_covers_every_file():
    names = [f"class_{i % 7}/img_{i:05d}.png" for i in range(3000)]
    shards = [shard_of(n, 4) for n in names]
    assert set(shards) == {1, 2, 3, 4}
    assert all(600 < shards.count(k) < 900 for k in (1, 2, 3, 4))
    assert shards == [shard_of(n, 4) for n in names]  # deterministic
    assert (
        shard_of("a/b.png", 4)
        == 1 + int.from_bytes(__import__("hashlib").sha256(b"a/b.png").digest()[:8], "big") % 4
    )
    assert parse_shard("2/8") == (2, 8)


def test_plan_ignores_nothing_it_should_copy(tmp_path):
    from refinekit.refine import plan_refine

    (tmp_path / "in" / "deep").mkdir(parents=True)
    Image.fromarray(_u8(4, 4)).save(tmp_path / "in" / "deep" / "x.png")
    (tmp_path / "in" / "deep" / "refinekit-manifest.jsonl").write_text(
        "labels that look like ours\n"
    )
    (tmp_path / "in" / ".hidden").write_text("x")
    plan = plan_refine(tmp_path / "in", tmp_path / "out")
    assert plan.images == ("deep/x.png",)
    assert plan.others == (
        ".hidden",
        "deep/refinekit-manifest.jsonl",
    )  # only top-level manifests are ours
    assert Path(plan.manifest_path).name == "refinekit-manifest.jsonl"
