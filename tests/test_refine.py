"""`refinekit refine` end to end through `cli.main`, on real files, with a fake refiner.

The fake stands in for `inference.load_refiner` (monkeypatched at `cli.refine._load_refiner`),
so these tests need no JAX and run in seconds; `test_refine_e2e.py` repeats the key ones with a
trained tiny model.
"""

import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import refinekit.cli.refine as cli_refine
import refinekit.refine.runner as runner_module
from helpers import MODEL_ID, FakeRefiner
from refinekit.cli import main
from refinekit.io.decode import read_image
from refinekit.refine.manifest import MANIFEST_NAME


@pytest.fixture
def fake(monkeypatch):
    """fake(**kw) installs a FakeRefiner as the model the CLI loads, and returns it."""

    def install(**kw):
        refiner = FakeRefiner(**kw)
        monkeypatch.setattr(
            cli_refine, "_load_refiner", lambda run, step, model, batch_size, micro_batch: refiner
        )
        return refiner

    return install


@pytest.fixture
def no_model(monkeypatch):
    def refuse(*args):
        raise AssertionError("the model must not be loaded when the command is refused")

    monkeypatch.setattr(cli_refine, "_load_refiner", refuse)


def _save(path: Path, array: np.ndarray, **options) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **options)


def _smooth(rng, shape, top=255, dtype=np.uint8):
    base = rng.random(shape)
    for _ in range(4):
        for axis in (0, 1):
            base = (base + np.roll(base, 1, axis)) / 2
    return np.round(base * top).astype(dtype)


def make_tree(root: Path) -> Path:
    """Class subfolders, two image sizes, gray/RGB/RGBA/16-bit PNG, a JPEG and label sidecars."""
    rng = np.random.default_rng(0)
    _save(root / "cats" / "c01.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    _save(root / "cats" / "c02.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    _save(root / "cats" / "gray.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    _save(root / "dogs" / "big" / "d01.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    _save(root / "dogs" / "big" / "d02.png", rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    _save(root / "dogs" / "alpha.png", rng.integers(0, 256, (16, 16, 4), dtype=np.uint8))
    _save(root / "dogs" / "deep16.png", rng.integers(0, 65536, (24, 32), dtype=np.uint16))
    _save(root / "photos" / "p01.jpg", _smooth(rng, (24, 32, 3)), quality=95)
    (root / "cats" / "c01.json").write_text(json.dumps({"gaze": [0.1, -0.3], "class": "cat"}))
    (root / "dogs" / "big" / "d01.txt").write_bytes(b"dog 0.5 0.5 0.2 0.1\r\n\x00binary\xff")
    (root / "labels.csv").write_text("file,label\ncats/c01.png,0\n")
    return root


def files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def outputs(root: Path) -> dict[str, bytes]:
    """OUT's files except manifests."""
    return {k: v for k, v in files(root).items() if not k.startswith("refinekit-manifest")}


def manifest(out: Path, name: str = MANIFEST_NAME) -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def refine(inp, out, *extra, run="runs/fake"):
    return main(["refine", str(inp), str(out), "--run", str(run), *extra])


def summary_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


# ---------------------------------------------------------------------------------------------


def test_tree_comes_out_with_the_same_paths_sizes_modes_bit_depths_and_sidecars(tmp_path, fake):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    before = snapshot(inp)
    refiner = fake()
    assert refine(inp, out) == 0

    assert snapshot(inp) == before  # IN is never written
    source, result = files(inp), outputs(out)
    assert sorted(result) == sorted(source)
    for rel in source:
        if not rel.endswith((".png", ".jpg")):
            assert result[rel] == source[rel], rel  # sidecars byte for byte
            continue
        with Image.open(inp / rel) as a, Image.open(out / rel) as b:
            assert (b.format, b.size, b.mode) == (a.format, a.size, a.mode), rel
        original, info = read_image(inp / rel)
        refined, info_out = read_image(out / rel)
        assert refined.dtype == original.dtype and refined.shape == original.shape, rel
        top = np.iinfo(original.dtype).max
        colour = slice(0, 3) if original.shape[-1] >= 3 else slice(0, 1)
        expected = top - original[..., colour].astype(np.int64)
        if rel.endswith(".jpg"):
            assert np.abs(refined.astype(np.int64) - expected).mean() < 3, rel
        else:
            np.testing.assert_array_equal(refined[..., colour], expected, err_msg=rel)
        if original.shape[-1] == 4:
            np.testing.assert_array_equal(refined[..., 3], original[..., 3])  # alpha unchanged
    assert read_image(out / "dogs" / "deep16.png")[0].dtype == np.uint16

    # Batches are grouped by shape: 4 RGB-converted 16x16 images, 2 RGB 24x32 + 16-bit 24x32 +
    # the JPEG 24x32 = 4 -> with batch size 4, one call per shape.
    assert sorted(refiner.calls) == [(4, 16, 16, 3), (4, 24, 32, 3)]

    records = manifest(out)
    assert {r["input"] for r in records} == set(source)
    for r in records:
        assert r["output"] == r["input"]
        assert r["input_sha256"] == hashlib.sha256(source[r["input"]]).hexdigest()
        assert r["output_sha256"] == hashlib.sha256(result[r["output"]]).hexdigest()
        assert r["output_size"] == len(result[r["output"]])
        is_image = r["input"].endswith((".png", ".jpg"))
        assert r["action"] == ("refined" if is_image else "copied")
        assert r["model"] == (MODEL_ID if is_image else None)
        assert r["error"] is None


def test_second_run_skips_everything_and_overwrite_redoes_it(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    fake()
    assert refine(inp, out) == 0
    first, manifest_bytes = snapshot(out), (out / MANIFEST_NAME).read_bytes()
    capsys.readouterr()

    refiner = fake()
    assert refine(inp, out, "--json") == 0
    summary = summary_json(capsys)
    assert (summary["refined"], summary["copied"], summary["failed"]) == (0, 0, 0)
    assert summary["skipped"] == len(files(inp))
    assert refiner.calls == []
    assert snapshot(out) == first  # not a byte or a timestamp changed, manifest included
    assert (out / MANIFEST_NAME).read_bytes() == manifest_bytes

    assert refine(inp, out, "--overwrite", "--json") == 0
    summary = summary_json(capsys)
    assert summary["refined"] == 8 and summary["copied"] == 3 and summary["skipped"] == 0
    assert len(manifest(out)) == 2 * len(files(inp))
    assert {k: v[0] for k, v in snapshot(out).items() if "manifest" not in k} == {
        k: v[0] for k, v in first.items() if "manifest" not in k
    }


def test_rerun_redoes_exactly_what_is_missing_damaged_or_changed(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    fake()
    assert refine(inp, out) == 0
    reference = outputs(out)

    (out / "cats" / "c01.png").unlink()  # missing
    with open(out / "cats" / "c02.png", "r+b") as f:  # cut short: size no longer matches
        f.truncate(40)
    os.utime(out / "cats" / "gray.png", ns=(1, 1))  # touched only: content hash still matches
    (out / "labels.csv").write_text("something else entirely\n")  # edited copy
    capsys.readouterr()
    assert refine(inp, out, "--json") == 0
    summary = summary_json(capsys)
    assert (summary["refined"], summary["copied"]) == (2, 1)
    assert outputs(out) == reference

    # A changed input is refined again.
    _save(inp / "cats" / "c01.png", np.zeros((16, 16, 3), np.uint8))
    assert refine(inp, out, "--json") == 0
    assert summary_json(capsys)["refined"] == 1
    assert np.all(read_image(out / "cats" / "c01.png")[0] == 255)


def test_rerun_with_another_model_is_refused_unless_overwrite(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    fake()
    assert refine(inp, out) == 0
    capsys.readouterr()
    fake(model_id={"run": "/runs/fake", "step": 2}, fn=lambda x: x)
    assert refine(inp, out) == 2
    err = capsys.readouterr().err
    assert "step 1" in err and "--overwrite" in err and "--step 1" in err
    assert refine(inp, out, "--overwrite") == 0
    assert np.array_equal(
        read_image(out / "cats" / "c01.png")[0], read_image(inp / "cats" / "c01.png")[0]
    )


def test_corrupt_files_are_named_recorded_and_everything_else_is_written(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    (inp / "cats" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    good = (inp / "cats" / "c01.png").read_bytes()
    (inp / "dogs" / "truncated.png").write_bytes(good[: len(good) // 2])
    fake()
    assert refine(inp, out) == 1
    err = capsys.readouterr().err
    assert "cats/broken.png" in err and "dogs/truncated.png" in err
    assert "2 file(s) could not be refined" in err
    written = outputs(out)
    assert "cats/broken.png" not in written and "dogs/truncated.png" not in written
    assert len(written) == len(files(inp)) - 2
    failed = {r["input"]: r for r in manifest(out) if r["action"] == "failed"}
    assert set(failed) == {"cats/broken.png", "dogs/truncated.png"}
    assert all(r["error"] and r["output"] is None for r in failed.values())
    assert (
        failed["cats/broken.png"]["input_sha256"]
        == hashlib.sha256((inp / "cats" / "broken.png").read_bytes()).hexdigest()
    )

    # The rerun retries only the failed files (and they fail again).
    capsys.readouterr()
    assert refine(inp, out, "--json") == 1
    summary = summary_json(capsys)
    assert (summary["refined"], summary["failed"], summary["skipped"]) == (0, 2, len(written))


def test_fail_fast_stops_at_the_first_unreadable_image(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    (inp / "cats" / "a_broken.png").write_bytes(b"garbage")  # the first image in sorted order
    fake()
    assert refine(inp, out, "--fail-fast") == 1
    err = capsys.readouterr().err
    assert "--fail-fast" in err and "cats/a_broken.png" in err
    records = manifest(out)
    assert [r["input"] for r in records if r["action"] == "failed"] == ["cats/a_broken.png"]
    assert not any(r["action"] == "refined" for r in records)


@pytest.mark.parametrize(
    "where, message",
    [
        ("inside", "is inside IN"),
        ("same", "same folder as IN"),
        ("outside_parent", "is inside OUT"),
    ],
)
def test_out_overlapping_in_is_refused(tmp_path, no_model, capsys, where, message):
    inp = make_tree(tmp_path / "data" / "syn")
    out = {"inside": inp / "refined", "same": inp, "outside_parent": tmp_path / "data"}[where]
    before = snapshot(tmp_path)
    assert refine(inp, out) == 2
    assert message in capsys.readouterr().err
    assert snapshot(tmp_path) == before  # nothing written anywhere


@pytest.mark.parametrize(
    "args, message",
    [
        (["--run", "r", "--model", "m.rk"], "exactly one of --run"),
        ([], "exactly one of --run"),
        (["--model", "m.rk", "--step", "3"], "--step picks a checkpoint"),
        (["--run", "r", "--shard", "0/4"], "1 <= K <= N"),
        (["--run", "r", "--shard", "5/4"], "1 <= K <= N"),
        (["--run", "r", "--shard", "half"], "expected K/N"),
    ],
)
def test_bad_flags_are_usage_errors(tmp_path, no_model, capsys, args, message):
    inp = make_tree(tmp_path / "syn")
    assert main(["refine", str(inp), str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_folders_are_usage_errors(tmp_path, no_model, capsys):
    inp = make_tree(tmp_path / "syn")
    assert refine(tmp_path / "missing", tmp_path / "out") == 2
    assert "no such file or folder" in capsys.readouterr().err
    assert refine(inp / "labels.csv", tmp_path / "out") == 2
    assert "not an image file" in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert refine(inp, tmp_path / "afile") == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert refine(tmp_path / "empty", tmp_path / "out") == 2
    assert "no image files found" in capsys.readouterr().err


def test_single_image_file(tmp_path, fake, capsys):
    inp = make_tree(tmp_path / "syn")
    fake()
    assert refine(inp / "dogs" / "alpha.png", tmp_path / "one") == 0
    assert sorted(outputs(tmp_path / "one")) == ["alpha.png"]
    refined = read_image(tmp_path / "one" / "alpha.png")[0]
    original = read_image(inp / "dogs" / "alpha.png")[0]
    np.testing.assert_array_equal(refined[..., 3], original[..., 3])
    np.testing.assert_array_equal(refined[..., :3], 255 - original[..., :3])
    assert refine(inp / "dogs" / "alpha.png", inp / "dogs") == 2  # would replace the input
    assert "replace the input" in capsys.readouterr().err
    assert refine(inp / "dogs" / "alpha.png", tmp_path / "refined.png") == 2
    assert "OUT is a folder" in capsys.readouterr().err


def test_no_copy_other_leaves_sidecars_out(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    fake()
    assert refine(inp, out, "--no-copy-other", "--json") == 0
    summary = summary_json(capsys)
    assert summary["copied"] == 0 and summary["not_copied"] == 3
    assert all(rel.endswith((".png", ".jpg")) for rel in outputs(out))


def test_temporary_files_of_a_killed_run_are_removed_and_never_copied(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"
    (out / "cats").mkdir(parents=True)
    (out / "cats" / ".c01.png.refinekit-tmp-4242").write_bytes(b"half an image")
    (out / ".labels.csv.refinekit-tmp-77").write_bytes(b"half a label")
    # An IN that was itself an OUT once: its manifest and temporaries are not data.
    (inp / MANIFEST_NAME).write_text("{}\n")
    (inp / "dogs" / ".d.png.refinekit-tmp-1").write_bytes(b"x")
    fake()
    assert refine(inp, out, "--json") == 0
    summary = summary_json(capsys)
    assert summary["cleaned"] == 2 and summary["not_copied"] == 2
    names = [p.name for p in out.rglob("*")]
    assert not any("refinekit-tmp" in n for n in names)
    assert {r["input"] for r in manifest(out)}.isdisjoint(
        {MANIFEST_NAME, "dogs/.d.png.refinekit-tmp-1"}
    )


def test_shards_partition_the_files_and_their_union_is_the_unsharded_output(tmp_path, fake, capsys):
    inp = make_tree(tmp_path / "syn")
    rng = np.random.default_rng(5)
    for i in range(12):
        _save(inp / "more" / f"m{i:02d}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        (inp / "more" / f"m{i:02d}.json").write_text(json.dumps({"i": i}))
    fake()
    assert refine(inp, tmp_path / "whole") == 0
    for k in (1, 2, 3):
        assert refine(inp, tmp_path / "sharded", "--shard", f"{k}/3") == 0
    assert outputs(tmp_path / "sharded") == outputs(tmp_path / "whole")
    assert not (tmp_path / "sharded" / MANIFEST_NAME).exists()
    per_shard = [
        {
            r["input"]
            for r in manifest(tmp_path / "sharded", f"refinekit-manifest.shard-{k}-of-3.jsonl")
        }
        for k in (1, 2, 3)
    ]
    assert all(per_shard)  # 35 files: every shard gets some
    assert sum(len(s) for s in per_shard) == len(set().union(*per_shard)) == len(files(inp))

    # A shard rerun resumes from its own manifest.
    capsys.readouterr()
    assert refine(inp, tmp_path / "sharded", "--shard", "2/3", "--json") == 0
    summary = summary_json(capsys)
    assert summary["skipped"] == len(per_shard[1]) and summary["refined"] == 0


def test_channel_conversion_both_ways(tmp_path, fake):
    rng = np.random.default_rng(3)
    inp = tmp_path / "syn"
    rgb = _smooth(rng, (16, 16, 3))
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    _save(inp / "rgb.png", rgb)
    _save(inp / "gray.png", gray)
    _save(inp / "la.png", np.stack([gray, 255 - gray], -1))

    # Identity models give back the input exactly, whatever the conversion.
    fake(channels=1, fn=lambda x: x)
    assert refine(inp, tmp_path / "gray_model") == 0
    fake(channels=3, fn=lambda x: x)
    assert refine(inp, tmp_path / "rgb_model") == 0
    for out in ("gray_model", "rgb_model"):
        for name in ("rgb.png", "gray.png", "la.png"):
            a, b = read_image(inp / name)[0], read_image(tmp_path / out / name)[0]
            assert np.abs(a.astype(int) - b.astype(int)).max() <= 1, (out, name)

    # A gray model that darkens: the refined luma replaces the image's, chroma is kept.
    fake(channels=1, fn=lambda x: 0.5 * x, model_id={"run": "/runs/dark", "step": 1})
    assert refine(inp, tmp_path / "dark") == 0
    before = rgb.astype(np.float64) / 255
    after = read_image(tmp_path / "dark" / "rgb.png")[0].astype(np.float64) / 255
    luma = np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(after @ luma, 0.5 * (before @ luma), atol=2 / 255)
    unclipped = (before - 0.5 * (before @ luma)[..., None]).min(-1) > 2 / 255
    np.testing.assert_allclose(
        (after - (after @ luma)[..., None])[unclipped],
        (before - (before @ luma)[..., None])[unclipped],
        atol=2 / 255,
    )


def test_a_failing_refiner_fails_its_files_only(tmp_path, fake, capsys):
    inp, out = make_tree(tmp_path / "syn"), tmp_path / "out"

    def fn(x):
        if x.shape[1:3] == (24, 32):
            raise MemoryError("out of device memory")
        return x

    fake(fn=fn)
    assert refine(inp, out, "--json") == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 4 and summary["refined"] == 4
    assert any("refiner failed on 24x32 images" in f for f in summary["failures"])

    fake(fn=lambda x: np.full_like(x, np.nan), model_id={"run": "/runs/nan", "step": 1})
    assert refine(inp, tmp_path / "nan", "--json") == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["failed"] == 8 and "NaN" in summary["failures"][0]


def test_progress_bar_on_a_terminal(tmp_path, fake, monkeypatch, capsys):
    inp = make_tree(tmp_path / "syn")
    (inp / "zz_broken.png").write_bytes(b"garbage")
    monkeypatch.setattr(cli_refine, "interactive", lambda: True)
    fake()
    assert refine(inp, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "images/s" in err and "zz_broken.png" in err and "refined 8, copied 3" in err


# ---------------------------------------------------------------------------------------------
# Killed for real: SIGKILL a subprocess running the CLI in the middle of a folder.

_SLOW_CLI = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    import refinekit.cli.refine as cli_refine
    from refinekit.cli import main

    class Slow:
        channels, batch_size, train_size = 3, 2, (16, 16)
        model_id = {"run": "/runs/fake", "step": 1}
        def __call__(self, images):
            time.sleep(0.05)
            return 1.0 - images

    cli_refine._load_refiner = lambda *args: Slow()
    sys.exit(main(sys.argv[1:]))
    """
)


def test_killed_run_leaves_no_partial_file_and_resumes_to_the_same_bytes(tmp_path, fake, capsys):
    """The subprocess runs the real CLI (`cli.main`) with a slow fake model in place of
    `load_refiner`; test_refine_e2e.py kills `python -m refinekit refine --run` on a trained run."""
    inp = make_tree(tmp_path / "syn")
    rng = np.random.default_rng(9)
    for i in range(60):
        _save(inp / "many" / f"m{i:02d}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    fake(batch_size=2)
    assert refine(inp, tmp_path / "reference") == 0
    reference = outputs(tmp_path / "reference")

    out = tmp_path / "out"
    script = tmp_path / "slow_cli.py"
    script.write_text(_SLOW_CLI)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, str(script), "refine", str(inp), str(out), "--run", "x", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            path = out / MANIFEST_NAME
            if path.exists() and path.read_text().count('"refined"') >= 10:
                break
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.005)
        else:
            pytest.fail("the run made no progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    # No partial output: every image file in OUT is complete and final, and the manifest names
    # only files that are on disk with the recorded content.
    partial = outputs(out)
    done = [r for r in manifest(out) if r["action"] in ("refined", "copied")]
    assert 10 <= sum(r["action"] == "refined" for r in done) < 68
    for rel, data in partial.items():
        if "refinekit-tmp" in rel:
            continue  # a temporary name, cleaned up by the next run
        assert data == reference[rel], rel
    for r in done:
        assert hashlib.sha256(partial[r["output"]]).hexdigest() == r["output_sha256"]

    capsys.readouterr()
    fake(batch_size=2)
    assert refine(inp, out, "--json") == 0
    summary = summary_json(capsys)
    assert summary["skipped"] >= len(done)
    assert summary["refined"] + summary["copied"] + summary["skipped"] == len(files(inp))
    assert outputs(out) == reference
    assert not any("refinekit-tmp" in p.name for p in out.rglob("*"))


def test_refine_batches_round_up_to_at_most_batch_size(tmp_path, fake):
    """Many shapes with few images each: every call carries one shape and <= batch_size images."""
    rng = np.random.default_rng(4)
    inp = tmp_path / "syn"
    sizes = [(8 + i, 8 + 2 * i) for i in range(6)]
    for i, size in enumerate(sizes):
        for j in range(3):
            _save(inp / f"s{i}" / f"{j}.png", rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    refiner = fake(batch_size=2)
    assert refine(inp, tmp_path / "out") == 0
    per_shape = {}
    for shape in refiner.calls:
        per_shape[shape[1:3]] = per_shape.get(shape[1:3], 0) + shape[0]
    assert per_shape == {size: 3 for size in sizes}
    assert len(refiner.calls) == len(sizes) * math.ceil(3 / 2)


def test_odd_file_names_round_trip_through_the_manifest(tmp_path, fake, capsys):
    rng = np.random.default_rng(6)
    inp, out = tmp_path / "syn", tmp_path / "out"
    names = ["with space.png", "ünï 图.png", "[bold]x[red].png", os.fsdecode(b"raw\xff.png")]
    for name in names:
        _save(inp / "d" / name, rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    (inp / "d" / "[bold]broken[red].png").write_bytes(b"nope")
    fake()
    assert refine(inp, out, "--json") == 1
    assert "[bold]broken[red].png" in capsys.readouterr().err  # printed as is, not as markup
    assert sorted(outputs(out)) == sorted(f"d/{n}" for n in names)
    assert refine(inp, out, "--json") == 1
    summary = summary_json(capsys)
    assert (summary["skipped"], summary["refined"], summary["failed"]) == (4, 0, 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux's")
def test_file_work_threads_run_at_a_lower_priority_than_the_refiner(monkeypatch):
    import threading

    from refinekit.refine.pipeline import yield_to_compute

    def niceness_after(setting):
        if setting is not None:
            monkeypatch.setenv("REFINEKIT_IO_NICE", setting)
        seen = []

        def worker():
            tid = threading.get_native_id()
            before = os.getpriority(os.PRIO_PROCESS, tid)
            yield_to_compute()
            seen.append(os.getpriority(os.PRIO_PROCESS, tid) - before)

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        return seen[0]

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    assert niceness_after(None) == min(10, 19 - main_before)
    assert niceness_after("0") == 0
    assert (
        os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
    )  # only that thread


def test_the_shared_progress_bar_shows_count_fields_elapsed_and_eta():
    import io
    import re

    from rich.console import Console

    from refinekit.cli.common import progress_bar

    bar = progress_bar("[bold]{task.description}", "rate")
    task = bar.add_task("work", total=8, rate="12.5 images/s")
    bar.advance(task, 3)
    out = io.StringIO()
    Console(file=out, width=160, color_system=None).print(bar.get_renderable())
    text = out.getvalue()
    assert "work" in text and "3/8" in text and "12.5 images/s" in text
    assert len(re.findall(r"-:--:--|\d:\d\d:\d\d", text)) == 2  # elapsed and the ETA


class DispatchingFake(FakeRefiner):
    """A FakeRefiner that starts batches and is waited for later, as `inference.Refiner` is."""

    def __init__(self, fail_batch=None, **kw):
        super().__init__(**kw)
        self.events: list[tuple[str, int]] = []
        self.fail_batch = fail_batch

    def __call__(self, images):
        raise AssertionError("refine must start batches with dispatch")

    def dispatch(self, images):
        number = sum(kind == "start" for kind, _ in self.events)
        self.events.append(("start", number))
        result = FakeRefiner.__call__(self, images)

        def wait():
            self.events.append(("wait", number))
            if number == self.fail_batch:
                raise RuntimeError("device lost")
            return result

        return wait


def _flat_tree(root: Path, count: int) -> Path:
    rng = np.random.default_rng(7)
    for i in range(count):
        _save(root / f"{i:02d}.png", rng.integers(0, 256, (12, 10, 3), dtype=np.uint8))
    return root


def test_the_next_batch_starts_before_the_last_is_waited_for(tmp_path, monkeypatch):
    inp = _flat_tree(tmp_path / "syn", 6)
    refiner = DispatchingFake(batch_size=2)
    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: refiner)
    assert refine(inp, tmp_path / "out") == 0
    # batch k+1 is on the device while refine waits for batch k and writes it out
    assert [e[0] for e in refiner.events] == ["start", "start", "wait", "start", "wait", "wait"]
    assert [e[1] for e in refiner.events if e[0] == "wait"] == [0, 1, 2]
    synchronous = FakeRefiner(batch_size=2)
    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: synchronous)
    assert refine(inp, tmp_path / "sync") == 0
    assert outputs(tmp_path / "out") == outputs(tmp_path / "sync")


def test_a_batch_that_fails_on_the_device_fails_its_files_only(tmp_path, monkeypatch, capsys):
    inp = _flat_tree(tmp_path / "syn", 6)
    refiner = DispatchingFake(batch_size=2, fail_batch=1)
    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: refiner)
    assert refine(inp, tmp_path / "out", "--json") == 1
    summary = summary_json(capsys)
    assert (summary["refined"], summary["failed"]) == (4, 2)
    assert all(
        "refiner failed on 12x10 images: RuntimeError: device lost" in f
        for f in summary["failures"]
    )
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "00.png",
        "01.png",
        "04.png",
        "05.png",
    ]


def test_workers_0_does_the_file_work_in_the_calling_thread(tmp_path, fake, monkeypatch):
    inp = make_tree(tmp_path / "syn")
    fake()
    assert refine(inp, tmp_path / "threads", "--workers", "2") == 0
    threads = set()
    real_read_source = runner_module.read_source

    def read_source(path, data):
        threads.add(threading.current_thread().name)
        return real_read_source(path, data)

    monkeypatch.setattr(runner_module, "read_source", read_source)
    assert refine(inp, tmp_path / "inline", "--workers", "0") == 0
    assert threads == {threading.current_thread().name}
    assert outputs(tmp_path / "inline") == outputs(tmp_path / "threads")


def test_refine_syncs_each_writing_task_once_not_each_file(tmp_path, monkeypatch):
    import refinekit.io.atomic as atomic_module

    inp = _flat_tree(tmp_path / "syn", 6)
    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: FakeRefiner(batch_size=2))
    syncfs_calls, file_syncs = [], []
    monkeypatch.setattr(atomic_module, "_syncfs", lambda: lambda fd: syncfs_calls.append(fd) or 0)
    monkeypatch.setattr(atomic_module, "sync_file", file_syncs.append)
    # one worker: each writing task is one batch of 2 files
    assert refine(inp, tmp_path / "out", "--workers", "1") == 0
    assert len(syncfs_calls) == 3 and file_syncs == []
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        f"{i:02d}.png" for i in range(6)
    ]
