"""docs/reliability.md, gap-report outputs (D1, D11): no output ever lands on an input, every output path is
checked before any work, and reports are written atomically (a full disk leaves no partial file).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from conftest import write_images
from helpers import _one_line_error, launch
from refinekit.cli import main


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def sets(tmp_path):
    real = write_images(tmp_path / "R", 20, (16, 16, 3), 1, smooth=False)
    syn = write_images(tmp_path / "S", 10, (16, 16, 3), 2, smooth=True)
    return real, syn


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "m.npz"
    assert main(["export", str(trained), str(path)]) == 0
    return path


def _gap(real, syn, *extra) -> list[str]:
    return ["gap-report", "--real", str(real), "--synthetic", str(syn), "--bootstrap", "20", *extra]


@pytest.mark.parametrize(
    "extra, flag",
    [
        (["--save-refined", "{S}"], "--save-refined"),  # D1: replaced every synthetic PNG
        (["--save-refined", "{S}/sub"], "--save-refined"),  # inside the input
        (["--save-refined", "{root}"], "--save-refined"),  # holds both inputs
        (["--json", "{R}/img_000.png"], "--json"),  # D1: replaced a real image with JSON
        (["--html", "{S}/img_003.png"], "--html"),
        (
            ["--json", "{R}/new.json"],
            "--json",
        ),  # inside an input folder: read as an input next time
        (["--json", "{link}/img_001.png"], "--json"),  # through a symlink to the input
    ],
)
def test_gap_report_never_writes_onto_its_inputs(sets, exported, tmp_path, capsys, extra, flag):
    real, syn = sets
    (tmp_path / "link").symlink_to(real)
    values = {"S": syn, "R": real, "root": tmp_path, "link": tmp_path / "link"}
    extra = [e.format(**values) for e in extra]
    before = {"R": _digests(real), "S": _digests(syn)}
    code = main(_gap(real, syn, "--model", str(exported), *extra))
    err = capsys.readouterr().err
    assert code == 2, err
    _one_line_error(err, flag, "never writes onto its inputs")
    assert {"R": _digests(real), "S": _digests(syn)} == before
    assert "gap-report: read images" not in err  # refused before any work


@pytest.mark.parametrize("case", ["folder", "below_file", "missing_folder", "save_onto_file"])
def test_gap_report_output_paths_are_checked_before_any_work(
    sets, exported, tmp_path, capsys, case
):
    real, syn = sets
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    extra = {
        "folder": ["--json", str(tmp_path / "adir")],  # D11: failed only after the computation
        "below_file": ["--html", str(tmp_path / "afile" / "r.html")],
        "missing_folder": ["--json", str(tmp_path / "nope" / "r.json")],
        "save_onto_file": ["--save-refined", str(tmp_path / "afile")],  # D11: FileExistsError
    }[case]
    code = main(_gap(real, syn, "--model", str(exported), *extra))
    err = capsys.readouterr().err
    assert code == 2, err
    _one_line_error(err, extra[0], extra[1])
    assert "unexpected" not in err
    assert "gap-report: read images" not in err  # before any work
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.slow
def test_gap_report_json_on_a_full_disk_leaves_no_partial_file(sets, tmp_path, monkeypatch):
    """D11: --json on a full disk left a truncated JSON. RLIMIT_FSIZE makes writes past 4 KB
    fail with EFBIG, as on a full disk (the report is far larger than that)."""
    real, syn = sets
    # Its own compile cache: under the limit JAX would write truncated entries into the shared one.
    monkeypatch.setenv("REFINEKIT_COMPILE_CACHE", "off")
    target = tmp_path / "out" / "gap.json"
    target.parent.mkdir()
    args = ["-m", "refinekit", *_gap(real, syn, "--json", str(target))]
    result = launch("file-size-limit", "4096", args)
    assert result.returncode == 1, result.stderr
    _one_line_error(result.stderr, "--json", str(target), "cannot write the report")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary file either


@pytest.mark.slow
def test_gap_report_save_refined_writes_complete_pngs_atomically(sets, exported, tmp_path):
    real, syn = sets
    saved = tmp_path / "saved"
    assert main(_gap(real, syn, "--model", str(exported), "--save-refined", str(saved))) == 0
    names = sorted(p.name for p in saved.iterdir())
    assert names == sorted(p.name for p in syn.iterdir())
    assert not any("refinekit-tmp" in n for n in names)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


@pytest.mark.slow
def test_relative_report_paths_in_existing_folders_are_accepted(sets, tmp_path, monkeypatch):
    """`--json out/gap.json` relative to the working folder, as the walkthrough writes it."""
    real, syn = sets
    (tmp_path / "out").mkdir()
    monkeypatch.chdir(tmp_path)
    args = _gap(real.name, syn.name, "--json", "out/gap.json", "--html", "out/gap.html")
    assert main(args) == 0
    assert json.loads((tmp_path / "out" / "gap.json").read_text())["verdict"]["outcome"] is None
    assert main(_gap(real.name, syn.name, "--json", "missing/gap.json")) == 2
