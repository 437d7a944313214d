"""docs/reliability.md, exported refiners (D5, D10, D12): a hostile export costs nothing (its header is
validated and its shapes checked against the stored arrays before anything is allocated), and
`export` checks FILE before any work, never writes onto its inputs and writes atomically.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import _one_line_error, launch
from refinekit.cli import main


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "m.npz"
    assert main(["export", str(trained), str(path)]) == 0
    return path


def _rewrite(source: Path, target: Path, header=None, drop: str | None = None, **arrays) -> Path:
    """A copy of export `source` with another header (any JSON value) or arrays."""
    with np.load(source, allow_pickle=False) as npz:
        items = {k: npz[k] for k in npz.files}
    if header is not None:
        items["__header__"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    if drop:
        items.pop(drop)
    items.update(arrays)
    np.savez(target, **items)
    return target


def _header(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as npz:
        return json.loads(npz["__header__"].tobytes().decode())


def _refine_with(model: Path, tmp_path: Path, capsys) -> tuple[int, str]:
    images = tmp_path / "in"
    images.mkdir(exist_ok=True)
    from PIL import Image

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(images / "a.png")
    code = main(["refine", str(images), str(tmp_path / "out"), "--model", str(model)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    "make, needle",
    [
        (lambda h: [1, 2, 3], "header is a JSON list, expected an object"),  # AttributeError
        (
            lambda h: {k: v for k, v in h.items() if k != "config"},
            "header has no config",
        ),  # KeyError
        (lambda h: {**h, "config": "abcd"}, "config is a str"),  # "unknown key(s) , a, c, d"
        (
            lambda h: {**h, "config": {**h["config"], "width": "8"}},
            "width = '8' has the wrong type",
        ),
        (lambda h: {**h, "config": {**h["config"], "blocks": -1}}, "--blocks"),
        (lambda h: {**h, "format": "other"}, "unknown format 'other'"),
        (lambda h: {**h, "config": {**h["config"], "size": None}}, "its config has no size"),
        (lambda h: "just a string", "header is a JSON str"),
    ],
)
def test_malformed_export_headers_are_one_line_errors_naming_the_file(
    exported, tmp_path, capsys, make, needle
):
    bad = _rewrite(exported, tmp_path / "bad.npz", header=make(_header(exported)))
    code, err = _refine_with(bad, tmp_path, capsys)
    assert code in (1, 2), err
    _one_line_error(err, str(bad), needle)
    assert "unexpected" not in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.png"))


@pytest.mark.parametrize("width", [1000, 3000])
def test_hostile_export_width_is_refused_before_any_allocation(
    exported, tmp_path, capsys, monkeypatch, width
):
    """D5: a 1.5 KB export claiming width 3000 made refine build a 2.5 GB model over 15 s."""
    header = _header(exported)
    header["config"]["width"] = width
    bad = _rewrite(exported, tmp_path / "wide.npz", header=header)
    assert bad.stat().st_size < 20_000
    import refinekit.nn.models

    def no_model(*args, **kwargs):
        raise AssertionError("a model was built for a hostile export")

    monkeypatch.setattr(refinekit.nn.models, "build_models", no_model)
    started = time.monotonic()
    code, err = _refine_with(bad, tmp_path, capsys)
    assert time.monotonic() - started < 10
    assert code == 1, err
    needle = "do not match its config" if width == 1000 else "more than the limit"
    _one_line_error(err, str(bad), needle)


def test_stored_arrays_must_match_the_config_shape_by_shape(exported, tmp_path, capsys):
    with np.load(exported) as npz:
        name = next(k for k in npz.files if k.endswith("kernel"))
        shape = npz[name].shape
    bad = _rewrite(exported, tmp_path / "b.npz", **{name: np.zeros((*shape[:-1], 1), np.float32)})
    code, err = _refine_with(bad, tmp_path, capsys)
    assert code == 1
    _one_line_error(err, str(bad), f"parameter {name}")
    missing = _rewrite(exported, tmp_path / "m.npz", drop=name)
    code, err = _refine_with(missing, tmp_path, capsys)
    assert code == 1
    _one_line_error(err, str(missing), f"missing {name}")


def test_compressed_export_bomb_is_refused_by_its_npy_header(exported, tmp_path, capsys):
    """An array whose .npy header declares a huge shape, deflated to a few bytes."""
    with np.load(exported) as npz:
        items = {k: npz[k] for k in npz.files}
    name = next(k for k in items if k.endswith("kernel"))
    bad = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bad, "w", zipfile.ZIP_DEFLATED) as archive:
        for key, value in items.items():
            buffer = io.BytesIO()
            if key == name:
                np.lib.format.write_array_header_1_0(
                    buffer, {"descr": "<f4", "fortran_order": False, "shape": (1 << 16, 1 << 16)}
                )
                buffer.write(b"\0" * (1 << 20))
            else:
                np.lib.format.write_array(buffer, value)
            archive.writestr(key + ".npy", buffer.getvalue())
    code, err = _refine_with(bad, tmp_path, capsys)
    assert code == 1
    _one_line_error(err, str(bad), f"parameter {name}")


def test_model_that_is_a_fifo_is_refused_without_hanging(tmp_path, capsys):
    import os

    fifo = tmp_path / "m.npz"
    os.mkfifo(fifo)
    code, err = _refine_with(fifo, tmp_path, capsys)  # before: blocked forever in read_bytes
    assert code == 1
    _one_line_error(err, str(fifo), "FIFO")


def _no_temporaries(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if "tmp" in p.name], list(folder.rglob("*"))


@pytest.mark.parametrize(
    "case", ["folder", "below_file", "run_config", "inside_run", "input_image"]
)
def test_export_file_is_checked_before_any_work(trained, tmp_path, capsys, case):
    """D10: FILE an existing folder or below a regular file gave "unexpected ..." and left a
    temporary file; `export RUN RUN/config.json` or onto an input image overwrote it."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    synthetic = Path(json.loads((trained / "config.json").read_text())["synthetic"])
    image = sorted(synthetic.glob("*.png"))[0]
    target = {
        "folder": tmp_path / "adir",
        "below_file": tmp_path / "afile" / "m.npz",
        "run_config": trained / "config.json",
        "inside_run": trained / "m.npz",
        "input_image": image,
    }[case]
    before = {p: p.read_bytes() for p in (trained / "config.json", image)}
    code = main(["export", str(trained), str(target)])
    err = capsys.readouterr().err
    assert code == 2, err
    _one_line_error(err, str(target))
    assert "unexpected" not in err
    assert {p: p.read_bytes() for p in before} == before
    assert not (trained / "m.npz").exists()
    _no_temporaries(tmp_path)


@pytest.mark.slow
def test_export_on_a_full_disk_names_the_file_and_leaves_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("REFINEKIT_COMPILE_CACHE", "off")
    out = tmp_path / "out"
    out.mkdir()
    target = out / "m.npz"
    result = launch(
        "file-size-limit", "2048", ["-m", "refinekit", "export", str(trained), str(target)]
    )
    assert result.returncode == 1, result.stderr
    _one_line_error(result.stderr, str(target), "cannot write the export")
    assert list(out.iterdir()) == []


def test_exported_model_still_round_trips(exported, trained, tmp_path, capsys):
    code, err = _refine_with(exported, tmp_path, capsys)
    assert code == 0, err
    assert (tmp_path / "out" / "a.png").is_file()


def test_non_finite_parameters_in_an_export_are_refused(exported, tmp_path, capsys):
    with np.load(exported) as npz:
        name = next(k for k in npz.files if k.endswith("bias"))
        value = npz[name].copy()
    value[0] = np.nan
    bad = _rewrite(exported, tmp_path / "nan.npz", **{name: value})
    code, err = _refine_with(bad, tmp_path, capsys)
    assert code == 1
    _one_line_error(err, str(bad), f"parameter {name} holds NaN or infinite values")
