"""`refinekit export` and `refinekit refine` with a really trained tiny refiner (16x16, a few steps).

One run is trained per module. Checked: export -> refine --model gives the same bytes as
refine --run, and so does the union of two shards; --step picks a checkpoint; a folder with no checkpoint is refused before anything
is written; `python -m refinekit refine --run` killed with SIGKILL mid-way resumes to the same
bytes as an uninterrupted run.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import write_images
from refinekit.cli import main
from refinekit.refine.manifest import MANIFEST_NAME

pytest.importorskip(
    "refinekit.inference", reason="refinekit.inference (load_refiner, export_refiner) not built yet"
)


def _outputs(root):
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("refinekit-manifest")
    }


def _manifest(out):
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


@pytest.fixture
def tree(tmp_path):
    """Mixed modes and sizes for an RGB model: RGB, gray, RGBA, 16-bit gray, JPEG, sidecars."""
    rng = np.random.default_rng(0)
    root = tmp_path / "syn"
    write_images(root / "a", 5, (16, 16, 3), 3, smooth=True)
    write_images(root / "b", 3, (24, 20, 3), 4, smooth=True)
    write_images(root / "c", 2, (16, 16), 5, smooth=True)
    write_images(root / "d", 2, (20, 16), 6, smooth=True, dtype=np.uint16)
    write_images(root / "e", 2, (16, 16, 3), 7, smooth=True, ext=".jpg")
    Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)).save(root / "a" / "rgba.png")
    (root / "a" / "img_000.json").write_text('{"label": 3}')
    return root


@pytest.mark.slow
def test_export_then_refine_model_gives_the_same_bytes_as_refine_run(
    trained, tree, tmp_path, capsys
):
    assert main(["refine", str(tree), str(tmp_path / "by_run"), "--run", str(trained)]) == 0
    by_run = _outputs(tmp_path / "by_run")
    assert len(by_run) == 16  # 15 images and a sidecar
    source = _outputs(tree)
    assert any(by_run[k] != source[k] for k in by_run if k.endswith(".png"))  # it did refine

    # Shards batch different images together; the union is still the same bytes.
    for k in ("1/2", "2/2"):
        assert (
            main(
                [
                    "refine",
                    str(tree),
                    str(tmp_path / "sharded"),
                    "--run",
                    str(trained),
                    "--shard",
                    k,
                ]
            )
            == 0
        )
    assert _outputs(tmp_path / "sharded") == by_run

    exported = tmp_path / "shared" / "eyes.refiner"
    assert main(["export", str(trained), str(exported)]) == 0
    assert exported.is_file()
    assert main(["refine", str(tree), str(tmp_path / "by_model"), "--model", str(exported)]) == 0
    assert _outputs(tmp_path / "by_model") == by_run

    models = {
        json.dumps(r["model"], sort_keys=True)
        for r in _manifest(tmp_path / "by_model")
        if r["model"]
    }
    (model,) = [json.loads(m) for m in models]
    assert model["sha256"] == hashlib.sha256(exported.read_bytes()).hexdigest()
    (run_model,) = {
        json.dumps(r["model"], sort_keys=True) for r in _manifest(tmp_path / "by_run") if r["model"]
    }
    assert json.loads(run_model)["step"] == 16

    # --step picks an earlier checkpoint; resuming OUT with it is refused, a new OUT is fine.
    capsys.readouterr()
    assert (
        main(["refine", str(tree), str(tmp_path / "by_run"), "--run", str(trained), "--step", "10"])
        == 2
    )
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(["refine", str(tree), str(tmp_path / "step10"), "--run", str(trained), "--step", "10"])
        == 0
    )
    assert _outputs(tmp_path / "step10") != by_run


def test_no_valid_model_is_refused_before_anything_is_written(tree, tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    code = main(["refine", str(tree), str(tmp_path / "out"), "--run", str(tmp_path / "empty_run")])
    assert code in (1, 2)
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert main(
        ["refine", str(tree), str(tmp_path / "out"), "--model", str(tmp_path / "missing.refiner")]
    ) in (1, 2)
    assert not (tmp_path / "out").exists()
    assert main(["export", str(tmp_path / "empty_run"), str(tmp_path / "x.refiner")]) in (1, 2)
    assert not (tmp_path / "x.refiner").exists()


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_gives_the_uninterrupted_bytes(trained, tmp_path, capsys):
    inp = write_images(tmp_path / "syn" / "many", 600, (16, 16, 3), 8, smooth=True)
    (inp / "labels.txt").write_text("all zeros\n")
    assert (
        main(
            [
                "refine",
                str(tmp_path / "syn"),
                str(tmp_path / "reference"),
                "--run",
                str(trained),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    reference = _outputs(tmp_path / "reference")

    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "refinekit",
        "refine",
        str(tmp_path / "syn"),
        str(out),
        "--run",
        str(trained),
        "--batch-size",
        "2",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ)
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            path = out / MANIFEST_NAME
            if path.exists() and path.read_text().count('"refined"') >= 5:
                break
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.002)
        else:
            pytest.fail("the run made no progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = [r for r in _manifest(out) if r["action"] in ("refined", "copied")]
    assert 5 <= len(done) < 601, "killed too late to test a resume"
    for rel, data in _outputs(out).items():
        assert "refinekit-tmp" in rel or data == reference[rel], rel  # no partial output

    capsys.readouterr()
    assert (
        main(
            [
                "refine",
                str(tmp_path / "syn"),
                str(out),
                "--run",
                str(trained),
                "--batch-size",
                "2",
                "--json",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["skipped"] >= len(done) and summary["failed"] == 0
    assert _outputs(out) == reference
