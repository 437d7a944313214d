"""Reliability rules, closed as families: refinekit's own files are regular files opened without
following links (nothing is appended to an input through a planted link, no FIFO blocks a
command), OUT's files that refinekit did not write are never replaced unasked, output paths are
resolved before anything is created, damaged run-folder files are one-line errors naming them,
folder walks are iterative, and a resource estimate refuses absurd settings before any work.

Everything that could hang runs in a subprocess with a timeout, so a regression fails instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY, write_images
from helpers import _one_line_error
from refinekit.cli import main
from refinekit.refine.manifest import MANIFEST_NAME

HANG = 120  # seconds: far more than any of these takes, far less than forever
SHORT = ["--steps", "2", "--pretrain-refiner-steps", "2", "--pretrain-disc-steps", "1"]


@pytest.fixture(scope="module")
def model(trained, tmp_path_factory) -> Path:
    """An export of the session's tiny trained run."""
    path = tmp_path_factory.mktemp("probe-export") / "model.npz"
    assert main(["export", str(trained), str(path)]) == 0
    return path


def _syn(root: Path, count: int = 16) -> Path:
    """`count` gray 16x16 PNGs s00.png ... with .json label sidecars."""
    syn = write_images(root, count, (16, 16), 0, smooth=True)
    for i, path in enumerate(sorted(syn.glob("img_*.png"))):
        path.rename(syn / f"s{i:02d}.png")
        (syn / f"s{i:02d}.json").write_text(json.dumps({"label": i}))
    return syn


@pytest.fixture
def syn(tmp_path) -> Path:
    return _syn(tmp_path / "syn")


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _cli(*args: str, timeout: float = HANG) -> subprocess.CompletedProcess:
    """refinekit in a subprocess: a command that would block fails the test instead of hanging."""
    return subprocess.run(
        [sys.executable, "-m", "refinekit", *args], capture_output=True, text=True, timeout=timeout
    )


def _refine(syn: Path, out: Path, model: Path, *extra: str) -> list[str]:
    return ["refine", str(syn), str(out), "--model", str(model), *extra]


# ---------------------------------------------------------------------------------------------
# refinekit's own files in OUT: never through a link, regular files only


@pytest.mark.parametrize(
    "name, extra",
    [
        (MANIFEST_NAME, []),
        ("refinekit-manifest.shard-1-of-2.jsonl", ["--shard", "1/2"]),
        ("refinekit-manifest.lock", []),
        ("refinekit-manifest.shard-1-of-2.lock", ["--shard", "1/2"]),
        ("refinekit-manifest.pending", []),
    ],
)
def test_refine_never_appends_to_an_input_through_a_linked_state_file(
    syn, tmp_path, model, capsys, name, extra
):
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(syn / "s00.json")  # before: the manifest was appended to it
    before = _snapshot(syn)
    code = main(_refine(syn, out, model, *extra))
    _one_line_error(capsys.readouterr().err, str(out / name), "symbolic link")
    assert code == 2
    assert _snapshot(syn) == before
    assert sorted(p.name for p in out.iterdir()) == [name]  # nothing written


@pytest.mark.parametrize("name", [MANIFEST_NAME, "refinekit-manifest.lock"])
def test_refine_with_a_fifo_for_its_manifest_or_lock_is_refused_without_hanging(
    syn, tmp_path, model, name
):
    out = tmp_path / "out"
    out.mkdir()
    os.mkfifo(out / name)  # before: refine blocked forever opening the manifest
    result = _cli(*_refine(syn, out, model))
    _one_line_error(result.stderr, str(out / name), "FIFO")
    assert result.returncode == 2
    assert sorted(p.name for p in out.iterdir()) == [name]


# ---------------------------------------------------------------------------------------------
# OUT is refinekit's: a file it did not write is never replaced unasked


def test_refine_never_replaces_a_file_it_did_not_write_without_overwrite(
    syn, tmp_path, model, capsys
):
    out = tmp_path / "out"
    out.mkdir()
    (out / "s03.json").write_text("notes\n")  # before: replaced by the copy of IN/s03.json
    (out / "s05.png").write_text("mine\n")  # and by a refined image
    code = main(_refine(syn, out, model))
    _one_line_error(capsys.readouterr().err, "s03.json", "(and 1 more)", "--overwrite")
    assert code == 2
    assert sorted(p.name for p in out.iterdir()) == ["s03.json", "s05.png"]  # nothing written
    assert (out / "s03.json").read_text() == "notes\n"

    # --no-copy-other leaves IN's sidecars out: only the image is in the way.
    code = main(_refine(syn, out, model, "--no-copy-other"))
    _one_line_error(capsys.readouterr().err, "s05.png")
    assert code == 2

    assert main(_refine(syn, out, model, "--overwrite")) == 0  # asked: replaced
    assert (out / "s03.json").read_bytes() == (syn / "s03.json").read_bytes()
    capsys.readouterr()
    # Files refinekit wrote (recorded by its manifest) are its own: a rerun resumes.
    (out / "s04.json").write_text("changed")
    assert main(_refine(syn, out, model)) == 0
    assert (out / "s04.json").read_bytes() == (syn / "s04.json").read_bytes()


def test_files_a_killed_refine_put_in_place_before_recording_them_are_its_own(
    syn, tmp_path, model, capsys
):
    """A kill between a file's rename and its manifest line leaves the file unrecorded; the
    journal written before the rename says it is refinekit's, so the rerun resumes."""
    out = tmp_path / "out"
    assert main(_refine(syn, out, model)) == 0
    assert not (out / "refinekit-manifest.pending").exists()  # a clean run removes it
    lines = (out / MANIFEST_NAME).read_text().splitlines()
    kept = [line for line in lines if json.loads(line)["input"] not in ("s01.png", "s01.json")]
    (out / MANIFEST_NAME).write_text("".join(line + "\n" for line in kept))
    (out / "refinekit-manifest.pending").write_text('"s01.png"\n"s01.json"\n')
    capsys.readouterr()
    assert main(_refine(syn, out, model, "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["refined"], summary["copied"]) == (1, 1)
    assert not (out / "refinekit-manifest.pending").exists()


# ---------------------------------------------------------------------------------------------
# Output paths are resolved before anything is created


def test_refine_out_through_a_missing_folder_and_dotdot_creates_nothing_in_in(syn, tmp_path, model):
    before = sorted(p.name for p in syn.iterdir())
    out = syn / "nosub" / ".." / ".." / "out"
    assert main(_refine(syn, out, model)) == 0
    assert sorted(p.name for p in syn.iterdir()) == before  # before: IN/nosub was created
    assert (tmp_path / "out" / "s00.png").is_file()


# ---------------------------------------------------------------------------------------------
# The run folder's own files: regular files only, validated on read, named when they are not


def _copy_run(trained: Path, to: Path) -> tuple[Path, list[str]]:
    """A copy of the session's run, and the train arguments that resume it."""
    run = Path(shutil.copytree(trained, to, symlinks=True))
    saved = json.loads((run / "config.json").read_text())
    args = ["train", "--synthetic", saved["synthetic"], "--real", saved["real"], "--out", str(run)]
    return run, args


def _command(kind: str, run: Path, train_args: list[str], tmp_path: Path) -> list[str]:
    return {
        "train": [*train_args, "--steps", "20"],
        "export": ["export", str(run), str(tmp_path / "m.npz")],
        "refine": ["refine", str(_syn(tmp_path / "in", 2)), str(tmp_path / "o"), "--run", str(run)],
    }[kind]


@pytest.mark.parametrize(
    "kind, name",
    [("train", "config.json"), ("train", "metrics.jsonl"), ("export", "config.json")],
)
def test_a_fifo_at_a_run_folder_file_never_blocks(trained, tmp_path, kind, name):
    run, train_args = _copy_run(trained, tmp_path / "run")
    (run / name).unlink()
    os.mkfifo(run / name)  # before: blocked forever
    result = _cli(*_command(kind, run, train_args, tmp_path))
    _one_line_error(result.stderr, str(run / name), "FIFO")
    assert result.returncode == 2


@pytest.mark.parametrize(
    "kind, name, damage, needle",
    [
        ("train", "config.json", b"[1, 2]\n", "holds a JSON list, expected an object"),
        ("export", "config.json", b"[1, 2]\n", "holds a JSON list, expected an object"),
        ("train", "config.json", b'{"seed": 1\xff}', "line 1 is not UTF-8 text"),
        ("train", "metrics.jsonl", b'{"step": 1}\n\xff\n', "line 2 is not UTF-8 text"),
        ("train", "scores.jsonl", b"\xfe\n", "line 1 is not UTF-8 text"),
        ("refine", "scores.jsonl", b"\xfe\n", "line 1 is not UTF-8 text"),
        ("export", "scores.jsonl", b"\xfe\n", "line 1 is not UTF-8 text"),
    ],
)
def test_damaged_run_folder_files_are_one_line_errors_naming_them(
    trained, tmp_path, capsys, kind, name, damage, needle
):
    run, train_args = _copy_run(trained, tmp_path / "run")
    (run / name).write_bytes(damage)  # before: "unexpected TypeError/UnicodeDecodeError"
    code = main(_command(kind, run, train_args, tmp_path))
    _one_line_error(capsys.readouterr().err, str(run / name), needle)
    assert code == 2


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl", "scores.jsonl"])
def test_a_link_at_a_run_folder_file_is_refused_and_its_target_untouched(
    trained, tmp_path, capsys, name
):
    run, train_args = _copy_run(trained, tmp_path / "run")
    target = tmp_path / "elsewhere.json"
    target.write_bytes((run / name).read_bytes())
    (run / name).unlink()
    (run / name).symlink_to(target)
    before = target.read_bytes()
    code = main(_command("train", run, train_args, tmp_path))
    _one_line_error(capsys.readouterr().err, str(run / name), "symbolic link")
    assert code == 2
    assert target.read_bytes() == before


# ---------------------------------------------------------------------------------------------
# Folder walks are iterative: a tree 1,100 folders deep is scanned, mirrored and cleaned


def _deep(root: Path, depth: int = 1100) -> Path:
    folder = root
    for _ in range(depth):
        folder = folder / "d"
    from refinekit.io.atomic import make_folders

    make_folders(folder)  # pathlib's mkdir(parents=True) recursed too
    (folder / "x.txt").write_text("deep")
    return folder


def _remove_tree(root: Path) -> None:
    """shutil.rmtree without recursion (it recurses per level, so pytest could not remove a
    tree this deep from its temporary folders)."""
    folders, stack = [], [str(root)]
    while stack:
        folder = stack.pop()
        folders.append(folder)
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    os.unlink(entry.path)
    for folder in reversed(folders):
        os.rmdir(folder)


@pytest.fixture
def deep_tmp(tmp_path):
    yield tmp_path
    for name in os.listdir(tmp_path):
        if (tmp_path / name).is_dir() and not (tmp_path / name).is_symlink():
            _remove_tree(tmp_path / name)


def test_a_very_deep_folder_tree_is_walked_without_recursion(deep_tmp, model, capsys):
    from refinekit.io.files import list_images, scan_folder

    tmp_path = deep_tmp
    syn = _syn(tmp_path / "syn")
    deepest = _deep(syn)
    shutil.copy(syn / "s00.png", deepest / "deep.png")
    images, others = scan_folder(syn)  # before: RecursionError (refine, train, gap-report)
    assert len(images) == 17 and len(others) == 17
    assert len(list_images(syn)) == 17  # what train and gap-report read
    out = tmp_path / "out"
    code = main(_refine(syn, out, model))
    assert code == 0, capsys.readouterr().err
    relative = deepest.relative_to(syn)
    assert (out / relative / "deep.png").is_file() and (out / relative / "x.txt").is_file()
    # an earlier run's leftover temporary file deep down is found and removed
    (out / relative / f".x.txt.refinekit-tmp-{os.getpid() + 1}").write_text("partial")
    assert main(_refine(syn, out, model)) == 0
    assert not any("refinekit-tmp" in name for name in os.listdir(out / relative))


# ---------------------------------------------------------------------------------------------
# A resource estimate before any work: one limit for train, export and refine


@pytest.mark.parametrize(
    "settings, flags, needle",
    [
        ({"width": 4096, "blocks": 256}, [], "more than the limit of 67108864"),
        ({"preset": "tiny", "batch_size": 4}, ["--size", "16384", "16384"], "limit of 256 GiB"),
        ({}, ["--size", "4096", "4096"], "--size 4096 4096, --batch-size 32"),
    ],
)
def test_absurd_settings_together_are_refused_before_any_work(
    gray16, tmp_path, capsys, settings, flags, needle
):
    import time

    syn, real = gray16
    config = tmp_path / "c.json"
    config.write_text(json.dumps(settings))
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run)]
    started = time.monotonic()
    code = main([*args, "--config", str(config), *flags])  # before: memory climbed, no output
    _one_line_error(capsys.readouterr().err, needle)
    assert code == 2
    assert time.monotonic() - started < 20
    assert not run.exists()


def test_the_parameter_estimate_is_the_models_count_and_the_limit_is_shared(trained, model):
    import numpy as np

    from refinekit import limits
    from refinekit.config import TrainConfig
    from refinekit.inference import export_file

    saved = TrainConfig.from_dict(json.loads((trained / "config.json").read_text()), saved=True)
    with np.load(model) as npz:
        stored = sum(npz[k].size for k in npz.files if k != export_file.HEADER)
    assert stored == limits.refiner_parameters(
        saved.channels, saved.refiner_width, saved.refiner_blocks, saved.refiner_kernel
    )
    assert export_file.MAX_PARAMETERS == limits.MAX_PARAMETERS


@pytest.mark.slow
def test_train_out_through_a_missing_folder_and_dotdot_creates_nothing_in_synthetic(
    gray16, tmp_path, capsys
):
    syn, real = gray16
    before = sorted(p.name for p in syn.iterdir())
    out = syn / "nosub" / ".." / ".." / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(out)]
    code = main([*args, *TINY, "--steps", "1", "--pretrain-refiner-steps", "1"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in syn.iterdir()) == before  # before: --synthetic/nosub was made
    assert (tmp_path / "run" / "config.json").is_file()


# ---------------------------------------------------------------------------------------------
# Messages


def test_a_bmp_bomb_names_one_limit(tmp_path):
    import struct

    from refinekit.errors import ImageReadError
    from refinekit.io.decode import read_image
    from refinekit.io.source import MAX_PIXELS

    path = tmp_path / "bomb.bmp"  # a 54-byte header declaring 14000x14000 pixels
    info = struct.pack("<IiiHHIIiiII", 40, 14000, 14000, 1, 24, 0, 0, 0, 0, 0, 0)
    path.write_bytes(b"BM" + struct.pack("<IHHI", 54 + 3, 0, 0, 54) + info + b"\0\0\0")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    message = str(caught.value)
    assert f"declares 196000000 pixels, more than the limit of {MAX_PIXELS}" in message, message
    assert "178956970" not in message  # before: Pillow's own limit was quoted too


def test_an_export_whose_config_is_a_string_says_so_in_words(model, tmp_path, capsys):
    import numpy as np

    from refinekit.inference.export_file import HEADER

    with np.load(model) as npz:
        items = {k: npz[k] for k in npz.files}
    header = json.loads(items[HEADER].tobytes())
    items[HEADER] = np.frombuffer(json.dumps({**header, "config": "abcd"}).encode(), np.uint8)
    bad = tmp_path / "bad.npz"
    np.savez(bad, **items)
    code = main(_refine(_syn(tmp_path / "in", 2), tmp_path / "out", bad))
    _one_line_error(capsys.readouterr().err, "its header's config is a string, expected an object")
    assert code == 1


def test_inputs_named_like_temporary_files_are_left_out_and_said(syn, tmp_path, model, capsys):
    shutil.copy(syn / "s00.png", syn / ".s99.png.refinekit-tmp-123")
    assert main(_refine(syn, tmp_path / "out", model)) == 0
    err = capsys.readouterr().err
    assert "1 file(s) of IN are named like refinekit's temporary files" in err, err
    assert ".s99.png.refinekit-tmp-123" in err


def test_one_class_subfolder_is_not_called_no_class_subfolders(tmp_path):
    from refinekit.config import TrainConfig
    from refinekit.training import labels

    syn = tmp_path / "syn" / "cats"
    syn.mkdir(parents=True)
    paths = [syn / f"{i}.png" for i in range(3)]
    found = labels.find_labels(paths, tmp_path / "syn", paths, tmp_path / "syn")
    config = TrainConfig(refiner="resnet", extra=labels.config_extra(found))
    reasons = " ".join(labels.plan(config).reasons)
    assert "has one class subfolder (cats)" in reasons and "no class subfolders" not in reasons


class _Stop(Exception):
    pass


def _first_event(syn: Path, real: Path, run: Path, **settings):
    """train()'s first event, stopping the run there (before any step is compiled or run)."""
    from refinekit.training.loop import train

    seen = []

    def stop(event):
        seen.append(event)
        raise _Stop

    config = {"synthetic": str(syn), "real": str(real), "out": str(run), "preset": "tiny"}
    config["refiner"] = "resnet"  # auto says first which candidate it fits
    with pytest.raises(_Stop):
        train({**config, **settings}, stop)
    return seen[0]


def test_training_on_a_handful_of_real_images_warns_that_they_are_memorised(gray16, tmp_path):
    from refinekit.events import Note

    syn, _ = gray16
    real = write_images(tmp_path / "one", 1, (16, 16), 1, smooth=False)
    event = _first_event(syn, real, tmp_path / "run")  # before: no word about it
    assert isinstance(event, Note) and event.level == "warning", event
    assert "only 1 real image(s)" in event.text and "memorise" in event.text, event.text
    assert "\n" not in event.text
    # With enough real images the first event is no such warning (it is Started).
    event = _first_event(syn, gray16[1], tmp_path / "run2")
    assert not (isinstance(event, Note) and "memorise" in event.text), event


def test_low_bit_depth_images_come_out_8_bit_and_the_summary_says_so(tmp_path, model, capsys):
    import numpy as np
    from PIL import Image

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((16, 16)) > 0.5).astype(np.uint8) * 255).convert("1").save(
        src / "one.png"
    )
    Image.fromarray((rng.integers(0, 16, (16, 16)) * 17).astype(np.uint8), "L").save(
        src / "four.png", bits=4
    )
    assert (src / "four.png").read_bytes()[24] == 4  # the PNG header's bit depth
    out = tmp_path / "out"
    assert main(_refine(src, out, model, "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["refined"] == 2
    notes = [n for n in summary["notes"] if "1-, 2- and 4-bit images" in n]
    assert len(notes) == 1, summary["notes"]  # before: silent
    for name in ("one.png", "four.png"):
        assert (out / name).read_bytes()[24] == 8
        with Image.open(out / name) as image:
            assert image.mode == "L"
    assert main(_refine(_syn(tmp_path / "s8", 2), tmp_path / "o8", model, "--json")) == 0
    assert not any("4-bit" in n for n in json.loads(capsys.readouterr().out)["notes"])


def test_mixed_gray_and_colour_with_size_given_suggests_channels_not_size(gray16, tmp_path, capsys):
    from refinekit.errors import DataError
    from refinekit.io.sets import load_set

    _, real = gray16
    mixed = write_images(tmp_path / "mixed", 1, (16, 16), 0, smooth=True)
    write_images(tmp_path / "rgb", 1, (16, 16, 3), 0, smooth=True)
    shutil.move(tmp_path / "rgb" / "img_000.png", mixed / "rgb.png")
    args = ["train", "--synthetic", str(mixed), "--real", str(real), "--out", str(tmp_path / "r")]
    code = main([*args, "--size", "16", "16"])  # before: "... pass --size H W to resize them"
    err = capsys.readouterr().err
    _one_line_error(err, "different channel counts (16x16x1, 16x16x3)", "--channels 1 or")
    assert "--size" not in err and code == 2
    write_images(tmp_path / "big", 1, (20, 20, 3), 0, smooth=True)
    shutil.move(tmp_path / "big" / "img_000.png", mixed / "big.png")
    with pytest.raises(DataError) as caught:
        load_set(mixed, flag="--real", channels=None, size=None)
    message = str(caught.value)
    assert "different sizes and channel counts" in message, message
    assert "--size H W" in message and "--channels 1 or --channels 3" in message


@pytest.mark.parametrize(
    "text, flags, needle",
    [
        ("steps = -1\n", [], "--config {file}: steps: expected an integer in 0..2147483647"),
        ('preset = "huge"\n', [], "--config {file}: preset 'huge': expected one of"),
        ("channels = 2\n", [], "--config {file}: channels: expected 1 (gray) or 3 (RGB)"),
        # a flag given on the command line is named as the flag, as without a config file
        ("steps = 5\n", ["--steps", "-1"], "--steps: expected an integer in 0..2147483647"),
        ("steps = -1\n", ["--steps", "5", "--seed", "-2"], "--seed: expected an integer in"),
    ],
)
def test_a_bad_config_file_value_names_the_file_and_key_not_a_flag(
    gray16, tmp_path, capsys, text, flags, needle
):
    syn, real = gray16
    config = tmp_path / "run.toml"
    config.write_text(text)
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(tmp_path / "r")]
    code = main([*args, "--config", str(config), *flags])  # before: "--steps: expected ..."
    err = capsys.readouterr().err
    _one_line_error(err, needle.format(file=config))
    assert code == 2 and not (tmp_path / "r").exists()


def test_gap_report_without_json_does_not_point_to_a_json_report(gray16, capsys):
    syn, real = gray16
    (real / "bad.png").write_text("not an image")
    args = ["gap-report", "--real", str(real), "--synthetic", str(syn), "--bootstrap", "20"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "1 undecodable file(s) skipped, e.g. " in err and "bad.png" in err, err
    assert "JSON report" not in err and "--json FILE lists them all" in err, err


def _zero_png(width: int, height: int) -> bytes:
    """An all-black 8-bit gray PNG (a few kB per ten million pixels)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes(width + 1) * height, 6)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")
    )


def test_pillows_decompression_bomb_warning_never_reaches_the_user(tmp_path):
    """Images over Pillow's warning threshold (89 M pixels) but within refinekit's own limit are
    read without Pillow's raw warning, also on a thread pool (before: one thread leaving its
    catch_warnings block restored the filters while another was opening a large image)."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from refinekit.io.decode import read_image
    from refinekit.io.meta import probe_source
    from refinekit.io.sets import probe_sizes
    from refinekit.io.source import MAX_PIXELS

    assert Image.MAX_IMAGE_PIXELS < 10000 * 9000 <= MAX_PIXELS
    big = tmp_path / "big.png"
    big.write_bytes(_zero_png(10000, 9000))
    small = _zero_png(16, 16)
    jobs = [(big, big.read_bytes()) if i % 2 else (tmp_path / "s.png", small) for i in range(2000)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_image(big)[0].shape == (9000, 10000, 1)
        assert probe_sizes([big]) == {big: (9000, 10000)}
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda job: probe_source(*job), jobs))
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
