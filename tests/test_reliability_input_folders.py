"""docs/reliability.md, inputs (D2, D3, D4, D7, D9, D13's decode message, links to outside IN): only regular
files are read and nothing hangs, no output lands in IN through a linked subfolder, multi-frame
images are refused by name, one refine writes an OUT at a time.

Everything that could hang runs in a subprocess with a timeout, so a regression fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY, write_images
from helpers import _FAKE_CLI, _LOAD_SCRIPT, FakeRefiner, _one_line_error
from refinekit.cli import main
from refinekit.refine.manifest import MANIFEST_NAME

HANG = 120  # seconds: far more than any of these takes, far less than forever


@pytest.fixture
def fake(monkeypatch):
    """fake() installs a FakeRefiner (inverts images) as the model the CLI loads."""
    import refinekit.cli.refine as cli_refine

    def install(**kw):
        refiner = FakeRefiner(**kw)
        monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: refiner)
        return refiner

    return install


def _rgb(seed: int, h: int = 16, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _records(out: Path) -> dict[str, dict]:
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    return {r["input"]: r for r in map(json.loads, lines)}


def _special_folder(root: Path) -> Path:
    """Good images next to FIFOs and links to /dev/zero, named like images and like sidecars."""
    root.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(_rgb(i)).save(root / f"good{i}.png")
    os.mkfifo(root / "pipe.png")  # before: refine blocked forever
    os.mkfifo(root / "notes.txt")  # a FIFO copied as a sidecar
    os.symlink("/dev/zero", root / "zero.png")  # before: read forever (1 GB RSS at 12 s)
    os.symlink("/dev/zero", root / "zeros.bin")  # before: copied until OUT's disk was full
    return root


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    path = cwd / "script.py"
    path.write_text(script)
    return subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=HANG
    )


def test_refine_skips_fifos_and_devices_by_name_and_never_hangs(tmp_path):
    source = _special_folder(tmp_path / "in")
    out = tmp_path / "out"
    result = _run(_FAKE_CLI, "refine", str(source), str(out), "--run", "/runs/fake", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    _one_line_error(result.stderr, "4 file(s) could not be refined")
    records = _records(out)
    assert {k for k, r in records.items() if r["action"] == "refined"} == {
        "good0.png",
        "good1.png",
        "good2.png",
    }
    for name, kind in [
        ("pipe.png", "FIFO"),
        ("notes.txt", "FIFO"),
        ("zero.png", "character device"),
        ("zeros.bin", "character device"),
    ]:
        assert records[name]["action"] == "failed", name
        assert kind in records[name]["error"] and "not a regular file" in records[name]["error"]
        assert f"failed: {name}" in result.stderr
        assert not (out / name).exists()
    assert not [p for p in out.iterdir() if "refinekit-tmp" in p.name]


def test_training_reading_skips_fifos_and_devices_and_never_hangs(tmp_path):
    source = _special_folder(tmp_path / "syn")
    real = write_images(tmp_path / "real", 2, (16, 16, 3), 1, smooth=False)
    result = _run(_LOAD_SCRIPT, str(source), str(real), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "images 3"
    skipped = {Path(line.split(": ")[0]).name: line for line in lines[1:]}
    assert set(skipped) == {"pipe.png", "zero.png"}
    assert "FIFO" in skipped["pipe.png"] and "character device" in skipped["zero.png"]


@pytest.mark.slow
def test_gap_report_skips_a_fifo_and_never_hangs(tmp_path):
    real = write_images(tmp_path / "real", 20, (16, 16, 3), 1, smooth=False)
    syn = write_images(tmp_path / "syn", 10, (16, 16, 3), 2, smooth=True)
    os.mkfifo(real / "pipe.png")
    os.symlink("/dev/zero", syn / "zero.png")
    env = {**os.environ, "REFINEKIT_COMPILE_CACHE": "off"}
    args = ["--real", str(real), "--synthetic", str(syn), "--bootstrap", "20"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "refinekit",
            "gap-report",
            *args,
            "--json",
            str(tmp_path / "g.json"),
        ],
        capture_output=True,
        text=True,
        timeout=HANG,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "2 undecodable file(s) skipped" in result.stderr
    document = json.loads((tmp_path / "g.json").read_text())
    skipped = " ".join(str(s) for s in document["sets"]["real"]["skipped"])
    assert "pipe.png" in skipped and "FIFO" in skipped


def test_a_symlinked_subfolder_of_out_cannot_lead_into_in(tmp_path, fake, capsys):
    """D3: `ln -s $PWD/IN/sub OUT/sub; refine IN OUT` overwrote IN/sub/a.png, exit 0."""
    fake()
    source = tmp_path / "IN"
    (source / "sub" / "deeper").mkdir(parents=True)
    Image.fromarray(_rgb(0)).save(source / "sub" / "a.png")
    Image.fromarray(_rgb(1)).save(source / "sub" / "deeper" / "b.png")
    before = {p: p.read_bytes() for p in source.rglob("*.png")}
    out = tmp_path / "OUT"
    out.mkdir()
    os.symlink(source / "sub", out / "sub")
    code = main(["refine", str(source), str(out), "--run", "/runs/fake"])
    _one_line_error(capsys.readouterr().err, "OUT", "its subfolder sub", "never writes onto")
    assert code == 2
    assert {p: p.read_bytes() for p in source.rglob("*.png")} == before
    assert not (out / MANIFEST_NAME).exists()  # refused before any work


def test_out_reached_through_a_link_into_in_is_refused(tmp_path, fake, capsys):
    fake()
    source = write_images(tmp_path / "IN", 2, (16, 16, 3), 0, smooth=True)
    os.symlink(source, tmp_path / "alias")
    code = main(["refine", str(source), str(tmp_path / "alias" / "out"), "--run", "/runs/fake"])
    _one_line_error(capsys.readouterr().err, "inside IN")
    assert code == 2
    assert not (source / "out").exists()


def _apng(path: Path, frames: int = 3) -> None:
    images = [Image.fromarray(_rgb(i)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=[40, 80, 120][:frames])


def _multi_frame_folder(root: Path) -> Path:
    root.mkdir(parents=True)
    _apng(root / "anim.png")
    pages = [Image.fromarray(_rgb(i)) for i in range(3)]
    pages[0].save(root / "pages.tif", save_all=True, append_images=pages[1:])
    pages[0].save(root / "anim.webp", save_all=True, append_images=pages[1:], lossless=True)
    pages[0].save(root / "anim.gif", save_all=True, append_images=pages[1:])
    Image.fromarray(_rgb(5)).save(root / "still.png")
    return root


def test_multi_frame_images_are_refused_by_name_never_reduced(tmp_path, fake, capsys):
    """D4: a 3-frame APNG and a 3-page TIFF came out with 1 frame, exit 0, no note; an
    animated GIF was copied without a word."""
    fake()
    source = _multi_frame_folder(tmp_path / "in")
    out = tmp_path / "out"
    code = main(["refine", str(source), str(out), "--run", "/runs/fake"])
    err = capsys.readouterr().err
    assert code == 1, err
    records = _records(out)
    for name, what in [
        ("anim.png", "3 frames"),
        ("pages.tif", "3 pages"),
        ("anim.webp", "3 frames"),
    ]:
        assert records[name]["action"] == "failed", name
        assert "multi-frame" in records[name]["error"] and what in records[name]["error"], name
        assert not (out / name).exists()
    assert records["still.png"]["action"] == "refined"
    assert records["anim.gif"]["action"] == "copied"
    assert (out / "anim.gif").read_bytes() == (source / "anim.gif").read_bytes()
    assert "note:" in err and "(.gif) were copied unrefined" in err and "anim.gif" in err


def test_training_skips_multi_frame_images_by_name(tmp_path):
    from refinekit.io.sets import load_set

    loaded = load_set(
        _multi_frame_folder(tmp_path / "in"), flag="--synthetic", channels=3, size=None
    )
    assert len(loaded.images) == 1
    reasons = {Path(s.split(": ")[0]).name: s for s in loaded.skipped}
    assert set(reasons) == {"anim.png", "pages.tif", "anim.webp"}
    assert all("multi-frame" in r for r in reasons.values())


def test_decode_errors_name_the_file_not_an_in_memory_buffer(tmp_path, fake, capsys):
    fake()
    source = tmp_path / "in"
    source.mkdir()
    (source / "text.png").write_text("not an image")
    Image.fromarray(_rgb(0)).save(source / "ok.png")
    code = main(["refine", str(source), str(tmp_path / "out"), "--run", "/runs/fake"])
    err = capsys.readouterr().err
    assert code == 1
    assert "failed: text.png: cannot decode image" in err and "cannot identify image file" in err
    assert "BytesIO" not in err and "0x" not in err, err


# ---------------------------------------------------------------------------------------------
# D7: one writer per OUT

_HOLD = textwrap.dedent(
    """
    import sys, time
    from refinekit.io.lock import FolderLock
    shard = tuple(map(int, sys.argv[2].split("/"))) if len(sys.argv) > 2 else None
    with FolderLock(sys.argv[1], "OUT", shard, "refinekit-manifest.lock"):
        print("locked", flush=True)
        time.sleep(60)
    """
)


class _Holder:
    """Another process holding OUT's lock (as a running refine does)."""

    def __init__(self, out: Path, shard: str | None = None):
        args = [sys.executable, "-c", _HOLD, str(out), *([shard] if shard else [])]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "locked"

    def __enter__(self):
        return self.process

    def __exit__(self, *exc):
        self.process.kill()
        self.process.wait(timeout=30)
        self.process.stdout.close()


def test_a_second_refine_into_one_out_is_refused_and_leaves_the_first_alone(tmp_path, fake, capsys):
    """D7: the second deleted the first's live temporary files; the first failed 16 files."""
    fake()
    source = write_images(tmp_path / "in", 3, (16, 16, 3), 0, smooth=True)
    out = tmp_path / "out"
    out.mkdir()
    live = out / ".img_000.png.refinekit-tmp-999999"  # the first refine's file being written
    live.write_bytes(b"half")
    with _Holder(out) as holder:
        code = main(["refine", str(source), str(out), "--run", "/runs/fake"])
        _one_line_error(
            capsys.readouterr().err, "OUT", "another refinekit process", str(holder.pid)
        )
        assert code == 2
        assert live.read_bytes() == b"half"  # not removed
        assert not (out / MANIFEST_NAME).exists()
    # Once the holder is gone (even killed), the lock is free and the run resumes normally.
    assert main(["refine", str(source), str(out), "--run", "/runs/fake"]) == 0
    assert not live.exists()  # a dead writer's leftover, removed by the next run
    assert (out / "refinekit-manifest.lock").read_bytes() == b""  # a lock file holds nothing


def test_shards_share_out_but_not_with_an_unsharded_run(tmp_path, fake, capsys):
    fake()
    source = write_images(tmp_path / "in", 6, (16, 16, 3), 0, smooth=True)
    out = tmp_path / "out"
    out.mkdir()
    with _Holder(out, "1/2"):
        assert main(["refine", str(source), str(out), "--run", "/runs/fake", "--shard", "2/2"]) == 0
        code = main(["refine", str(source), str(out), "--run", "/runs/fake", "--shard", "1/2"])
        _one_line_error(capsys.readouterr().err, "another refinekit process", "this shard")
        assert code == 2
        code = main(["refine", str(source), str(out), "--run", "/runs/fake"])
        _one_line_error(capsys.readouterr().err, "another refinekit process")
        assert code == 2


# ---------------------------------------------------------------------------------------------
# D9, and links to files outside IN


@pytest.mark.slow
def test_a_file_name_that_is_not_utf8_trains(tmp_path, capsys):
    syn = write_images(tmp_path / "syn", 4, (16, 16, 3), 0, smooth=True)
    real = write_images(tmp_path / "real", 4, (16, 16, 3), 1, smooth=False)
    bad = os.fsencode(syn) + b"/bad\xffname.png"
    with open(bad, "wb") as f:
        f.write((syn / "img_000.png").read_bytes())
    steps = ["--steps", "1", "--pretrain-refiner-steps", "1", "--pretrain-disc-steps", "1"]
    code = main(
        [
            "train",
            "--synthetic",
            str(syn),
            "--real",
            str(real),
            "--out",
            str(tmp_path / "r"),
            *TINY,
            *steps,
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err  # before: "unexpected UnicodeEncodeError"
    assert "5 synthetic" in err


def test_links_to_files_outside_in_are_followed_and_said(tmp_path, fake, capsys):
    fake()
    elsewhere = write_images(tmp_path / "elsewhere", 1, (16, 16, 3), 3, smooth=True)
    source = write_images(tmp_path / "in", 1, (16, 16, 3), 0, smooth=True)
    os.symlink(elsewhere / "img_000.png", source / "linked.png")
    os.symlink(elsewhere, source / "linked_folder")  # folders are not followed
    out = tmp_path / "out"
    assert main(["refine", str(source), str(out), "--run", "/runs/fake"]) == 0
    err = capsys.readouterr().err
    assert _records(out)["linked.png"]["action"] == "refined"
    assert not (out / "linked_folder").exists()
    assert "1 file(s) are symbolic links to files outside IN, e.g. linked.png" in err
    assert (elsewhere / "img_000.png").read_bytes() != (out / "linked.png").read_bytes()


def test_a_file_over_the_size_cap_is_refused_before_reading(tmp_path, monkeypatch):
    from refinekit.io import regular
    from refinekit.io.sets import load_set

    source = write_images(tmp_path / "in", 2, (16, 16, 3), 0, smooth=True)
    with open(source / "huge.png", "wb") as f:  # sparse: no disk space is used
        f.truncate(regular.IMAGE_BYTES_CAP + 1)
    reads = []
    real_read = os.read
    monkeypatch.setattr(os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    loaded = load_set(source, flag="--synthetic", channels=3, size=None)
    assert len(loaded.images) == 2
    (reason,) = loaded.skipped
    assert "huge.png" in reason and "more than the limit of 1073741824 bytes" in reason
    assert max(reads) < regular.IMAGE_BYTES_CAP  # never asked for the huge file's bytes
