"""Hostile inputs, each with the behaviour the hostile-input table of docs/reliability.md
promises: a clear skip (train) or a recorded failure (refine) naming the file, or a one-line
error; never a traceback, never the whole job lost over one bad file.

One folder holds every hostile file at once; it is refined with a really trained tiny model
(trained once per module) and used as a training set. Permission cases run in a subprocess
without the capabilities that let root ignore permission bits; the full disk is simulated
with RLIMIT_FSIZE in a subprocess (writes past the limit fail with EFBIG).
"""

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import zlib
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import TINY, write_images
from helpers import _FAKE_CLI, _LOAD_SCRIPT, _copy_run, _one_line_error, launch
from refinekit import TrainConfig
from refinekit.cli import main
from refinekit.io.decode import read_image
from refinekit.io.png16 import png_header
from refinekit.io.sets import load_set
from refinekit.refine.manifest import MANIFEST_NAME, read_records
from refinekit.training import checkpoint, orbax_noise
from refinekit.training.data import load_training_data
from refinekit.training.state import make_mesh
from refinekit.training.steps import StepFunctions

RNG = np.random.default_rng(7)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16_rgb(pixels: np.ndarray) -> bytes:
    from refinekit.io.png16 import encode_png16

    return encode_png16(pixels)


def _rgb(h, w):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# name -> substring of the reason it is skipped (train) or failed (refine)
BAD = {
    "zero.png": "empty file (0 bytes)",
    "truncated.png": "truncated",
    "truncated.jpg": "truncated",
    "text.png": "cannot identify image file",
    "bomb.png": "declares 100000x100000 pixels",
    "loop_a.png": "Too many levels of symbolic links",
    "loop_b.png": "Too many levels of symbolic links",
    "metres.tif": "float image with values [2.5, 2.5]",
}
# name -> (Pillow format, mode, (width, height)) the refined output must have
GOOD = {
    "one_by_one.png": ("PNG", "RGB", (1, 1)),
    "large.png": ("PNG", "RGB", (640, 480)),
    "palette.png": ("PNG", "RGB", (16, 16)),
    "cmyk.jpg": ("JPEG", "RGB", (16, 16)),
    "gray16.png": ("PNG", "I;16", (20, 12)),
    "rgb16.png": ("PNG", "RGB", (16, 16)),
    "float.tif": ("TIFF", "F", (16, 16)),
    "exif_rotated.jpg": ("JPEG", "RGB", (24, 16)),
    "with space.png": ("PNG", "RGB", (16, 16)),
    "ünïcødé 图.png": ("PNG", "RGB", (16, 16)),
    "-leading-dash.png": ("PNG", "RGB", (16, 16)),
    "--help.png": ("PNG", "RGB", (16, 16)),
    "folder.png/inside.png": ("PNG", "RGB", (16, 16)),
    "class_a/a1.png": ("PNG", "RGB", (16, 16)),
    "class_a/a2.png": ("PNG", "RGB", (16, 16)),
    "class_b/b1.png": ("PNG", "RGB", (16, 16)),
    "loose.png": ("PNG", "RGB", (16, 16)),
}
OTHER = [
    "animated.gif",
    "labels.csv",
    "class_a/a1.json",
    "notes.txt",
]  # copied by refine, ignored by train


def make_hostile(root: Path) -> Path:
    """Every hostile input of the docs/reliability.md table in one folder (plus class subfolders, sidecars)."""
    root.mkdir(parents=True)
    (root / "zero.png").write_bytes(b"")
    Image.fromarray(_rgb(64, 64)).save(root / "full.tmp.png")
    data = (root / "full.tmp.png").read_bytes()
    (root / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "full.tmp.png").unlink()
    Image.fromarray(_rgb(64, 64)).save(root / "full.jpg", quality=90)
    data = (root / "full.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "full.jpg").unlink()
    (root / "text.png").write_text("this is not an image\n")
    (root / "bomb.png").write_bytes(  # 100000 x 100000 declared, 90 bytes on disk
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )
    os.symlink("loop_b.png", root / "loop_a.png")
    os.symlink("loop_a.png", root / "loop_b.png")
    Image.fromarray(np.full((16, 16), 2.5, np.float32)).save(root / "metres.tif")

    Image.fromarray(_rgb(1, 1)).save(root / "one_by_one.png")
    Image.fromarray(_rgb(480, 640)).save(root / "large.png")
    Image.fromarray(_rgb(16, 16)).quantize(16).save(root / "palette.png")
    Image.fromarray(_rgb(16, 16)).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    Image.fromarray(RNG.integers(0, 65536, (12, 20), dtype=np.uint16)).save(root / "gray16.png")
    (root / "rgb16.png").write_bytes(
        _png16_rgb(RNG.integers(0, 65536, (16, 16, 3), dtype=np.uint16))
    )
    Image.fromarray((RNG.integers(0, 65536, (16, 16)) / 65535).astype(np.float32)).save(
        root / "float.tif"
    )
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees to display"
    Image.fromarray(_rgb(16, 24)).save(root / "exif_rotated.jpg", exif=exif, quality=95)
    for name in (
        "with space.png",
        "ünïcødé 图.png",
        "-leading-dash.png",
        "--help.png",
        "loose.png",
    ):
        Image.fromarray(_rgb(16, 16)).save(root / name)
    for name in ("folder.png/inside.png", "class_a/a1.png", "class_a/a2.png", "class_b/b1.png"):
        (root / name).parent.mkdir(exist_ok=True)
        Image.fromarray(_rgb(16, 16)).save(root / name)

    frames = [Image.fromarray(np.full((8, 8, 3), 60 * i, np.uint8)) for i in range(3)]
    frames[0].save(root / "animated.gif", save_all=True, append_images=frames[1:])
    (root / "labels.csv").write_text("file,label\nclass_a/a1.png,a\n")
    (root / "class_a" / "a1.json").write_text('{"gaze": [0.1, 0.2]}')
    (root / "notes.txt").write_bytes(b"\x00\xffbinary notes")
    return root


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith("refinekit-manifest")
    }


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return make_hostile(tmp_path_factory.mktemp("hostile") / "syn")


# ---------------------------------------------------------------------------------------------
# refine: every hostile file in one folder


def test_refine_gives_every_hostile_input_its_defined_behaviour(trained, hostile, tmp_path, capsys):
    out = tmp_path / "out"
    before = {p: p.lstat().st_mtime_ns for p in hostile.rglob("*")}
    code = main(["refine", str(hostile), str(out), "--run", str(trained), "--batch-size", "2"])
    err = capsys.readouterr().err
    assert code == 1, err
    _one_line_error(err, f"{len(BAD)} file(s) could not be refined")
    assert {p: p.lstat().st_mtime_ns for p in hostile.rglob("*")} == before  # IN untouched

    records = {r["input"]: r for r in _manifest(out)}
    failed = {k: r for k, r in records.items() if r["action"] == "failed"}
    assert set(failed) == set(BAD)
    for name, reason in BAD.items():
        assert reason in failed[name]["error"], (name, failed[name]["error"])
        assert f"failed: {name}" in err  # each named on the terminal
    assert not (out / "bomb.png").exists() and not (out / "zero.png").exists()

    for name, (fmt, mode, size) in GOOD.items():
        assert records[name]["action"] == "refined", name
        with Image.open(out / name) as im:
            assert (im.format, im.mode, im.size) == (fmt, mode, size), name
    assert png_header(out / "rgb16.png").bits == 16  # 16-bit colour stays 16-bit
    assert read_image(out / "gray16.png")[0].dtype == np.uint16
    with Image.open(out / "exif_rotated.jpg") as im:
        assert im.getexif().get(0x0112) == 6  # stored pixels refined as stored; the tag is kept
    source = _outputs(hostile)
    for name in OTHER:
        assert records[name]["action"] == "copied" and (out / name).read_bytes() == source[name], (
            name
        )
    assert not any("refinekit-tmp" in p.name for p in out.rglob("*"))


def test_train_and_gap_reading_skip_each_bad_file_by_name(hostile, tmp_path):
    """The reading path of train (and of gap-report, which uses images.load_set)."""
    one_real = tmp_path / "real_one"
    write_images(one_real, 1, (16, 16, 3), 5, smooth=False)
    config = TrainConfig(
        refiner="resnet",
        synthetic=str(hostile),
        real=str(one_real),
        out=str(tmp_path / "r"),
        preset="tiny",
        batch_size=4,
        size=(16, 16),
        channels=3,
    )
    config, data = load_training_data(config)
    skipped = {Path(s.split(": ", 1)[0]).name: s.split(": ", 1)[1] for s in data.skipped}
    assert set(skipped) == set(BAD)
    for name, reason in BAD.items():
        assert reason in skipped[name], (name, skipped[name])
    assert len(data.synthetic) == len(GOOD)  # gif, csv, json, txt are not images
    assert (
        data.synthetic.shape[1:] == (16, 16, 3) and data.synthetic.dtype == np.uint16
    )  # 16-bit inputs
    assert len(data.real) == 1

    loaded = load_set(hostile, flag="--real", channels=3, size=(16, 16))
    assert sorted(Path(s.split(": ")[0]).name for s in loaded.skipped) == sorted(BAD)

    # Without --size the mixed sizes are a one-line usage error; without --channels the mix of
    # gray and colour is.
    from refinekit.errors import DataError

    with pytest.raises(DataError, match="--size"):
        load_training_data(config.replace(size=None, channels=None))
    with pytest.raises(DataError, match="--channels"):
        load_training_data(config.replace(channels=None))
    with pytest.raises(DataError, match="--strict"):
        load_training_data(config.replace(strict=True))


@pytest.mark.slow
def test_train_runs_on_the_hostile_set_with_one_real_image(hostile, tmp_path, capsys):
    one_real = write_images(tmp_path / "real_one", 1, (16, 16, 3), 5, smooth=False)
    run = tmp_path / "run"
    args = [
        "train",
        "--synthetic",
        str(hostile),
        "--real",
        str(one_real),
        "--out",
        str(run),
        "--steps",
        "2",
        *TINY,
        "--pretrain-refiner-steps",
        "2",
        "--pretrain-disc-steps",
        "2",
        "--size",
        "16",
        "16",
        "--channels",
        "3",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert f"skipped {len(BAD)} undecodable file(s)" in err and "Traceback" not in err
    assert f"{len(GOOD)} synthetic, 1 real images" in err
    assert checkpoint.steps(run)[-1] == 6


# ---------------------------------------------------------------------------------------------
# Paths that look like options


def test_leading_dash_paths_as_arguments(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_images(tmp_path / "-in", 2, (16, 16, 3), 0, smooth=True)
    assert main(["refine", "./-in", "./-out", "--run", str(trained)]) == 0
    assert main(["refine", "--run", str(trained), "--", "-in", "-out2"]) == 0
    assert (
        sorted(_outputs(tmp_path / "-out"))
        == sorted(_outputs(tmp_path / "-out2"))
        == ["img_000.png", "img_001.png"]
    )
    capsys.readouterr()
    # An option value may start with a dash (click takes the next word as the value).
    code = main(
        ["train", "--synthetic", "-in", "--real", "-in", "--out", "-run", "--config", "-nope.json"]
    )
    _one_line_error(capsys.readouterr().err, "-nope.json")
    assert code == 2


# ---------------------------------------------------------------------------------------------
# Configuration files


@pytest.mark.parametrize(
    "name, text, needle",
    [
        ("unknown.json", '{"batch_size": 4, "lerning_rate": 0.1}', "unknown key(s) lerning_rate"),
        ("unknown.toml", "batch-size = 4\n[model]\nwidth = 8\n", "unknown key(s) model"),
        ("string_int.json", '{"steps": "ten"}', "steps = 'ten' has the wrong type"),
        ("float_int.toml", "batch_size = 4.0\n", "batch_size = 4.0 has the wrong type"),
        ("bool_float.json", '{"lambda_reg": true}', "lambda_reg = True has the wrong type"),
        ("size_strings.json", '{"size": ["a", "b"]}', "size"),
        ("size_scalar.json", '{"size": 16}', "size = 16 has the wrong type"),
        ("null.json", '{"steps": null}', "steps must not be null"),
        ("range.json", '{"channels": 2}', "range.json: channels: expected 1 (gray) or 3 (RGB)"),
        ("list.json", "[1, 2]", "expected a table/object"),
        ("broken.toml", "steps = = 3\n", "not valid TOML"),
        ("broken.json", '{"steps": 3', "not valid JSON"),
        ("binary.json", b"\xff\xfe\x00garbage", "--config"),
    ],
)
def test_bad_config_files_are_one_line_errors(gray16, tmp_path, capsys, name, text, needle):
    syn, real = gray16
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    code = main(
        [
            "train",
            "--synthetic",
            str(syn),
            "--real",
            str(real),
            "--out",
            str(tmp_path / "run"),
            "--config",
            str(path),
        ]
    )
    _one_line_error(capsys.readouterr().err, needle)
    assert code == 2
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------
# Checkpoints: from another configuration, damaged


def _train_args_for(run: Path, *extra: str, out: Path | None = None) -> list[str]:
    config = json.loads((run / "config.json").read_text())
    return [
        "train",
        "--synthetic",
        config["synthetic"],
        "--real",
        config["real"],
        "--out",
        str(out or run),
        "--steps",
        "8",
        *TINY,
        "--pretrain-refiner-steps",
        "6",
        "--pretrain-disc-steps",
        "4",
        *extra,
    ]


@pytest.mark.slow
def test_checkpoint_from_another_configuration(trained, tmp_path, capsys):
    other = tmp_path / "other"  # the same data and shapes, another lambda; residual refiner:
    # on these noise images the direct one's colours can be flagged (no healthy checkpoint),
    # which is not what this test is about
    extra = ["--lambda-reg", "2.0", "--refiner-output", "residual"]
    assert main(_train_args_for(trained, *extra, out=other)) == 0
    mixed = _copy_run(trained, tmp_path / "mixed")
    shutil.rmtree(mixed / "checkpoints")
    shutil.copytree(other / "checkpoints", mixed / "checkpoints")
    capsys.readouterr()

    code = main(_train_args_for(mixed))
    _one_line_error(
        capsys.readouterr().err, "saved by another configuration", "lambda_reg: 2.0 -> 0.5"
    )
    assert code == 1
    # refine restores a checkpoint with the config saved in it, so it refines with that model.
    images = write_images(tmp_path / "syn", 2, (16, 16, 3), 0, smooth=True)
    assert main(["refine", str(images), str(tmp_path / "out"), "--run", str(mixed)]) == 0


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, min(len(data), len(data) // 3 + 8)):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garble", "truncate", "delete"])
def test_damaged_checkpoint_is_refused_with_the_way_out(trained, tmp_path, capsys, damage):
    run = _copy_run(trained, tmp_path / "run")
    latest = checkpoint.steps(run)[-1]
    folder = run / "checkpoints" / str(latest) / "state"
    victim = max((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if damage == "garble":
        _garble(victim)  # orbax alone restores different numbers from this without a word
    elif damage == "truncate":
        with open(victim, "r+b") as f:
            f.truncate(victim.stat().st_size // 2)
    else:
        victim.unlink()
    capsys.readouterr()

    code = main(_train_args_for(run))
    err = capsys.readouterr().err
    _one_line_error(err, f"checkpoints/{latest} is damaged", victim.name, "delete that folder")
    assert code == 1

    images = write_images(tmp_path / "syn", 2, (16, 16, 3), 0, smooth=True)
    code = main(["refine", str(images), str(tmp_path / "out"), "--run", str(run)])
    _one_line_error(capsys.readouterr().err, "is damaged")
    assert code == 1 and not (tmp_path / "out").exists()
    earlier = checkpoint.steps(run)[-2]
    assert (
        main(
            [
                "refine",
                str(images),
                str(tmp_path / "out"),
                "--run",
                str(run),
                "--step",
                str(earlier),
            ]
        )
        == 0
    )


# ---------------------------------------------------------------------------------------------
# Output locations that cannot be written


def test_output_below_a_regular_file_is_a_usage_error(trained, gray16, tmp_path, capsys):
    syn, real = gray16
    (tmp_path / "file").write_text("a file, not a folder")
    code = main(["refine", str(syn), str(tmp_path / "file" / "out"), "--run", str(trained)])
    _one_line_error(capsys.readouterr().err, "cannot create this folder", "Not a directory")
    assert code == 2
    code = main(
        [
            "train",
            "--synthetic",
            str(syn),
            "--real",
            str(real),
            "--out",
            str(tmp_path / "file" / "run"),
            *TINY,
        ]
    )
    _one_line_error(capsys.readouterr().err, "--out", "is a file, not a folder")
    assert code == 2


@pytest.fixture(scope="module")
def restricted():
    """run(args) -> CompletedProcess of `python args...` that cannot ignore permission bits."""
    if launch("no-permission-override", "", ["-c", "pass"]).returncode == 97:
        pytest.skip(
            "cannot drop root's permission override (no CAP_SETPCAP), so permissions cannot be tested"
        )
    return lambda args: launch("no-permission-override", "", args)


@pytest.fixture
def locked(tmp_path):
    """Files and folders made unreadable/read-only for the test, given back their rights after."""
    changed: list[tuple[Path, int]] = []

    def lock(path: Path, mode: int) -> None:
        changed.append((path, stat.S_IMODE(path.stat().st_mode)))
        path.chmod(mode)

    yield lock
    for path, mode in reversed(changed):
        path.chmod(mode)


@pytest.mark.slow
def test_unreadable_files_and_folders(restricted, locked, tmp_path):
    inp = write_images(tmp_path / "syn", 4, (16, 16, 3), 0, smooth=True)
    (inp / "labels.txt").write_text("labels")
    locked(inp / "img_001.png", 0)
    locked(inp / "labels.txt", 0)
    script = tmp_path / "fake.py"
    script.write_text(_FAKE_CLI)

    done = restricted([str(script), "refine", str(inp), str(tmp_path / "out"), "--run", "x"])
    assert done.returncode == 1, done.stderr
    _one_line_error(done.stderr, "2 file(s) could not be refined")
    failed = {
        r["input"]: r["error"] for r in _manifest(tmp_path / "out") if r["action"] == "failed"
    }
    assert failed == {"img_001.png": "Permission denied", "labels.txt": "Permission denied"}
    assert sorted(_outputs(tmp_path / "out")) == ["img_000.png", "img_002.png", "img_003.png"]

    real = write_images(tmp_path / "real", 2, (16, 16, 3), 1, smooth=False)
    loader = tmp_path / "load.py"
    loader.write_text(_LOAD_SCRIPT)
    done = restricted([str(loader), str(inp), str(real)])
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "images 3"
        and len(lines) == 2
        and "img_001.png" in lines[1]
        and "Permission denied" in lines[1]
    )

    # A folder that cannot be listed is an error naming it, not a silent hole in the set.
    (inp / "sub").mkdir()
    locked(inp / "sub", 0)
    done = restricted([str(script), "refine", str(inp), str(tmp_path / "out2"), "--run", "x"])
    assert done.returncode == 2
    _one_line_error(done.stderr, "sub: cannot list this folder (Permission denied)")
    done = restricted([str(loader), str(inp), str(real)])
    assert done.returncode == 2 and "cannot list this folder" in done.stdout


@pytest.mark.slow
def test_read_only_output_locations(restricted, locked, gray16, tmp_path):
    syn, real = gray16
    script = tmp_path / "fake.py"
    script.write_text(_FAKE_CLI)
    (tmp_path / "ro").mkdir()
    locked(tmp_path / "ro", 0o555)
    done = restricted([str(script), "refine", str(syn), str(tmp_path / "ro"), "--run", "x"])
    assert done.returncode == 1
    _one_line_error(done.stderr, "cannot write the manifest (Permission denied)")

    # A read-only subfolder of OUT: its files fail, everything else is written.
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    inp = tmp_path / "in"
    write_images(inp / "sub", 2, (16, 16, 3), 0, smooth=True)
    write_images(inp, 2, (16, 16, 3), 1, smooth=True)
    locked(out / "sub", 0o555)
    done = restricted([str(script), "refine", str(inp), str(out), "--run", "x"])
    assert done.returncode == 1, done.stderr
    _one_line_error(done.stderr, "2 file(s) could not be refined")
    assert sorted(_outputs(out)) == ["img_000.png", "img_001.png"]

    (tmp_path / "run").mkdir()
    locked(tmp_path / "run", 0o555)
    done = restricted(
        [
            "-m",
            "refinekit",
            "train",
            "--synthetic",
            str(syn),
            "--real",
            str(real),
            "--out",
            str(tmp_path / "run"),
            *TINY,
        ]
    )
    assert done.returncode == 1
    _one_line_error(
        done.stderr,
        "Permission denied",
        "make the run folder writable",
        "run the same command again",
    )


def test_full_disk_during_refine_stops_cleanly_and_resumes(tmp_path, monkeypatch, capsys):
    import refinekit.cli.refine as cli_refine

    class Invert:
        channels, batch_size, train_size = 3, 4, (16, 16)
        model_id = {"run": "/runs/fake", "step": 1}

        def __call__(self, images):
            return 1.0 - images

    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: Invert())
    inp = write_images(tmp_path / "syn", 30, (16, 16, 3), 2, smooth=True)
    Image.fromarray(_rgb(64, 64)).save(inp / "big.png")  # larger than the limit
    assert main(["refine", str(inp), str(tmp_path / "reference"), "--run", "x"]) == 0
    reference = _outputs(tmp_path / "reference")

    script = tmp_path / "fake.py"
    script.write_text(_FAKE_CLI)
    out = tmp_path / "out"
    done = launch(
        "file-size-limit", "4000", [str(script), "refine", str(inp), str(out), "--run", "x"]
    )
    assert done.returncode == 1
    _one_line_error(
        done.stderr, "cannot append to the manifest", os.strerror(errno.EFBIG), "rerun to resume"
    )
    written = _outputs(out)
    assert written and all(
        data == reference[rel] for rel, data in written.items()
    )  # no partial file
    # The write that hit the limit may have left half a line: readers skip it, the next run
    # starts on a fresh line.
    for record in read_records(out / MANIFEST_NAME):
        if record.action == "refined":
            assert (
                hashlib.sha256((out / record.output).read_bytes()).hexdigest()
                == record.output_sha256
            )

    capsys.readouterr()
    assert main(["refine", str(inp), str(out), "--run", "x"]) == 0
    assert _outputs(out) == reference


@pytest.mark.slow
def test_full_disk_during_training_keeps_the_last_checkpoint(gray16, tmp_path, capsys):
    syn, real = gray16
    args = [
        "train",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--steps",
        "4",
        *TINY,
        "--pretrain-refiner-steps",
        "6",
        "--pretrain-disc-steps",
        "4",
    ]
    assert main([*args, "--out", str(tmp_path / "reference")]) == 0  # also fills the compile cache
    run = tmp_path / "run"
    # 22 kB: the first sample grid (20.6 kB) fits, the checkpoint's state/_METADATA (23.2 kB) does not.
    done = launch("file-size-limit", "22000", ["-m", "refinekit", *args, "--out", str(run)])
    assert done.returncode == 1, done.stderr
    _one_line_error(done.stderr, "free some disk space", "run the same command again to resume")
    assert checkpoint.steps(run) == []  # the failed save left no checkpoint behind

    capsys.readouterr()
    assert main([*args, "--out", str(run)]) == 0
    assert checkpoint.steps(run)[-1] == checkpoint.steps(tmp_path / "reference")[-1] == 14


# ---------------------------------------------------------------------------------------------
# Numbers


@pytest.mark.slow
def test_non_finite_training_stops_at_its_step_and_checkpoints_nothing_after_it(
    gray16, tmp_path, capsys
):
    syn, real = gray16
    run = tmp_path / "run"
    args = [
        "train",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--out",
        str(run),
        "--steps",
        "20",
        *TINY,
        "--pretrain-refiner-steps",
        "6",
        "--pretrain-disc-steps",
        "4",
        "--checkpoint-every",
        "1",
        "--lr-refiner",
        "1e38",
        "--lr-disc",
        "1e38",
    ]
    code = main(args)
    err = capsys.readouterr().err
    _one_line_error(err, "NaN or infinite at step")
    assert code == 1
    bad = int(re.search(r"NaN or infinite at step (\d+)", err).group(1))
    # Step N is the update that starts from checkpoint N: nothing after the bad update is saved,
    # and what is saved holds finite numbers only.
    saved = checkpoint.steps(run)
    assert saved and all(step <= bad for step in saved)
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    state = checkpoint.restore(run, saved[-1], fns.init_state())
    for leaf in jax.tree.leaves(state.refiner) + jax.tree.leaves(state.disc):
        assert np.all(np.isfinite(np.asarray(leaf)))
    for line in (
        (run / "metrics.jsonl").read_text().splitlines()[:-1]
    ):  # the last line is the bad interval's
        assert all(np.isfinite(v) for v in json.loads(line).values() if isinstance(v, float)), line


def test_abandoned_orbax_write_tasks_are_not_logged_but_other_asyncio_errors_are(caplog):
    """After a failed save orbax leaves failed write tasks behind; asyncio would log each one
    with a traceback when it is collected (even at exit). Only those are silenced."""
    import asyncio
    import gc
    import logging

    def failing_coroutine(filename):
        namespace = {}
        exec(
            compile(
                "async def write():\n    raise OSError(27, 'File too large')\n", filename, "exec"
            ),
            namespace,
        )
        return namespace["write"]()

    def abandon(coro, gather=False):
        loop = asyncio.new_event_loop()

        async def start_gather():
            asyncio.gather(coro)  # orbax gathers its writes: asyncio logs a _GatheringFuture
            await asyncio.sleep(0.01)  # the write fails; nobody awaits the gathering future

        if gather:
            loop.run_until_complete(start_gather())
        else:
            loop.create_task(coro)
        loop.run_until_complete(asyncio.sleep(0.01))  # the task runs and fails; nobody awaits it
        loop.close()
        gc.collect()

    orbax_noise.quiet_orbax_once()  # as the first save or restore does
    caplog.set_level(logging.ERROR, logger="asyncio")
    abandon(
        failing_coroutine(
            "/venv/site-packages/orbax/checkpoint/_src/serialization/serialization.py"
        )
    )
    orbax_write = "/venv/site-packages/orbax/checkpoint/_src/serialization/serialization.py"
    abandon(failing_coroutine(orbax_write), gather=True)
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]
    abandon(failing_coroutine("/home/user/mine.py"), gather=True)
    assert [r for r in caplog.records if "_GatheringFuture exception" in r.getMessage()]
    abandon(failing_coroutine("/home/user/mine.py"))
    assert [r for r in caplog.records if "Task exception" in r.getMessage()]
