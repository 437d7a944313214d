"""`refinekit gap-report` end to end, on PNG folders the tests write themselves.

Real images are eyes with camera grain; synthetic ones are sharper renders without grain; a
third set of real images (disjoint from the real folder) plays a perfect refiner. Checked:
the JSON schema and the self-contained HTML; real vs a disjoint real split gives a gap near 0
and a domain classifier near chance; refined = held-out real closes ~100% of the gap;
refined = synthetic closes exactly 0%; file order and batch size do not change the numbers;
the same seed gives the same bytes; class subfolders add train-on-X, test-on-real accuracy;
usage errors exit 2 naming the flag; a non-finite metric stops the report; --run refines on the
fly with a really trained tiny refiner.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import FEATURE_SHA256, scenes, write_pngs
from refinekit.cli import main
from refinekit.errors import DataError, RefinekitError, UsageError
from refinekit.gap import gap_report
from refinekit.gap.features import FEATURE_DIM

N = 100  # synthetic, refined and each real half
SIZE = 32
REPLICATES = 100


def renders(count: int, seed: int, **kwargs) -> np.ndarray:
    """Synthetic eyes: no grain, hard edges."""
    return scenes(count, SIZE, seed, grain=0.0, sharpness=40.0, **kwargs)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("gap")
    return {
        "real": write_pngs(root / "real", scenes(2 * N, SIZE, 1)),
        "synthetic": write_pngs(root / "synthetic", renders(N, 2)),
        "heldout": write_pngs(root / "heldout", scenes(N, SIZE, 3)),
        "root": root,
    }


@pytest.fixture(scope="module")
def cli_report(folders):
    """One run through the CLI: refined = held-out real."""
    out = folders["root"] / "out"
    out.mkdir()
    code = main(
        [
            "gap-report",
            "--real",
            str(folders["real"]),
            "--synthetic",
            str(folders["synthetic"]),
            "--refined",
            str(folders["heldout"]),
            "--json",
            str(out / "gap.json"),
            "--html",
            str(out / "gap.html"),
            "--bootstrap",
            str(REPLICATES),
        ]
    )
    assert code == 0
    return json.loads((out / "gap.json").read_text()), (out / "gap.html").read_text(), out


def by_key(document: dict) -> dict:
    return {m["key"]: m for m in document["metrics"]}


def test_json_has_every_number_and_setting(cli_report):
    document, _, _ = cli_report
    assert document["schema"] == "refinekit.gap-report/2"
    reading = document["reading"]
    assert reading["size"] == [SIZE, SIZE] and reading["mode"] == "RGB" and reading["channels"] == 3
    assert reading["resize_filter"] == "antialiased triangle"
    sets = document["sets"]
    assert sets["real"]["count"] == 2 * N and sets["real"]["reference_count"] == N
    assert sets["real"]["holdout_count"] == N
    assert sets["synthetic"]["count"] == N and sets["refined"]["count"] == N
    assert sets["refined"]["source"] == "folder" and sets["refined"]["paired_with_synthetic"]
    assert document["features"]["sha256"] == FEATURE_SHA256
    assert document["features"]["dim"] == FEATURE_DIM and "proxy" in document["features"]["note"]
    assert document["seed"] == 0 and document["bootstrap"]["replicates"] == REPLICATES
    assert {"refinekit", "jax", "flax", "numpy", "python"} <= set(document["versions"])
    keys = [m["key"] for m in document["metrics"]]
    assert keys == [
        "headline",
        "kid",
        "swd",
        "frechet",
        "classifier_accuracy",
        "classifier_auc",
        "proxy_a_distance",
        "spectrum_low",
        "spectrum_mid",
        "spectrum_high",
        "spectrum_orientation",
        "intensity_w1",
        "mean_shift",
        "std_shift",
        "colour",
        "density",
        "coverage",
    ]  # no train-on-X row: the folders have no classes
    for m in document["metrics"]:
        for side in ("synthetic", "refined", "real_floor", "gap", "change"):
            e = m[side]
            assert e["low"] <= e["value"] <= e["high"], (m["key"], side, e)
    p = by_key(document)["classifier_accuracy"]["details"]["synthetic"]["p_value"]
    assert 0 <= p < 1e-3  # renders are easy to tell from camera images
    assert document["headline"]["metric"] == "headline" in keys
    for side in ("synthetic", "refined", "real_floor"):
        e = document["headline"][side]
        assert e["low"] <= e["value"] <= e["high"]
    assert document["verdict"]["outcome"] == "improved"
    assert "Frechet" in by_key(document)["frechet"]["name"]
    assert any("smaller than" in f for f in by_key(document)["frechet"]["flags"])  # 100 < 2 x 96


def test_html_is_self_contained_with_grids_charts_and_table(cli_report):
    document, html, _ = cli_report
    assert not re.search(r"(src|href)\s*=\s*[\"'](?!data:)", html)  # every source is inline
    assert "http://" not in html and "https://" not in html and "<script" not in html
    assert "<link" not in html and "url(" not in html
    assert html.count('src="data:image/png;base64,') == 3  # synthetic, refined, real grids
    assert html.count("<svg") == 4  # spectrum + one histogram per channel
    for m in document["metrics"]:
        assert m["name"] in html
    assert "antialiased triangle" in html and FEATURE_SHA256 in html


def test_real_vs_disjoint_real_is_near_zero_and_classifier_near_chance(cli_report):
    document, _, _ = cli_report
    metrics = by_key(document)
    for side in ("real_floor", "refined"):  # held-out real half; a third real set
        kid = metrics["kid"][side]
        assert kid["low"] <= 0 <= kid["high"] or abs(kid["value"]) < 0.02, (side, kid)
        accuracy = metrics["classifier_accuracy"][side]["value"]
        assert 0.35 <= accuracy <= 0.65, (side, accuracy)
        assert (
            metrics["classifier_accuracy"]["details"][
                "real_holdout" if side == "real_floor" else "refined"
            ]["p_value"]
            > 0.001
        )


def test_refined_equal_to_held_out_real_closes_the_whole_gap(cli_report):
    metrics = by_key(cli_report[0])
    for key in (
        "headline",
        "kid",
        "frechet",
        "classifier_accuracy",
        "spectrum_mid",
        "spectrum_high",
        "coverage",
    ):
        closed = metrics[key]["gap_closed"]
        assert closed is not None and closed["low"] <= 1.0 <= closed["high"], (key, closed)
        assert closed["value"] > 0.5, (key, closed)
        assert metrics[key]["significant"] and metrics[key]["outcome"] == "improved"
    assert cli_report[0]["verdict"]["headline"].startswith("Refinement made the synthetic images")


@pytest.mark.slow
def test_refined_equal_to_synthetic_closes_nothing(folders, tmp_path):
    copy = shutil.copytree(folders["synthetic"], tmp_path / "copy")
    report = gap_report(folders["real"], folders["synthetic"], refined=copy, replicates=REPLICATES)
    assert report.document["sets"]["refined"]["paired_with_synthetic"]
    assert report.document["verdict"]["outcome"] == "no significant change"
    for m in report.document["metrics"]:
        assert m["change"] == {"value": 0.0, "low": 0.0, "high": 0.0}, m["key"]
        assert not m["significant"] and m["outcome"] == "no significant change"
        if m["gap_closed"] is not None:
            assert m["gap_closed"] == {"value": 0.0, "low": 0.0, "high": 0.0}, m["key"]


def _numbers(document: dict) -> list[float]:
    out = []
    for m in document["metrics"]:
        for side in ("synthetic", "refined", "real_floor", "gap_closed"):
            if m[side] is not None:
                out += [m[side]["value"], m[side]["low"], m[side]["high"]]
    return out


@pytest.mark.slow
@pytest.mark.full_classifiers  # compared with the module fixture's report
def test_file_order_and_batch_size_do_not_change_the_numbers(folders, cli_report, tmp_path):
    rng = np.random.default_rng(0)

    def renamed(source: Path, target: Path, perm: np.ndarray) -> Path:
        target.mkdir()
        files = sorted(source.iterdir())
        for i, f in enumerate(files):  # a new name that sorts in another order
            shutil.copy(f, target / f"x{perm[i]:04d}.png")
        return target

    perm_syn = rng.permutation(N)  # the same renaming keeps synthetic/refined pairs together
    real = renamed(folders["real"], tmp_path / "real", rng.permutation(2 * N))
    syn = renamed(folders["synthetic"], tmp_path / "syn", perm_syn)
    ref = renamed(folders["heldout"], tmp_path / "ref", perm_syn)
    report = gap_report(real, syn, refined=ref, replicates=REPLICATES, batch_size=7)
    np.testing.assert_allclose(
        _numbers(report.document), _numbers(cli_report[0]), rtol=1e-6, atol=1e-9
    )


@pytest.mark.slow
@pytest.mark.full_classifiers  # compared with the module fixture's report
def test_the_same_seed_gives_the_same_bytes(folders, cli_report, tmp_path):
    from refinekit.gap import classifier

    classifier.clear_domain_cache()  # train the domain classifiers again, not recall them
    gap_report(
        folders["real"],
        folders["synthetic"],
        refined=folders["heldout"],
        replicates=REPLICATES,
        json_path=tmp_path / "a.json",
    )
    assert (tmp_path / "a.json").read_bytes() == (cli_report[2] / "gap.json").read_bytes()


@pytest.mark.slow
def test_class_subfolders_add_train_on_x_test_on_real(tmp_path):
    def labelled(folder, make, seed):
        left = make(60, seed, gaze=(-0.2, -0.1))
        right = make(60, seed + 1, gaze=(0.1, 0.2))
        names = [f"left/{i:03d}.png" for i in range(60)] + [f"right/{i:03d}.png" for i in range(60)]
        return write_pngs(folder, np.concatenate([left, right]), names)

    real = labelled(tmp_path / "real", lambda n, s, **k: scenes(n, SIZE, s, **k), 10)
    syn = labelled(tmp_path / "syn", renders, 20)
    report = gap_report(real, syn, replicates=50)
    assert report.document["classes"] == ["left", "right"]
    row = by_key(report.document)["train_on_x_accuracy"]
    assert row["real_floor"]["value"] > 0.85  # trained on the other real half: the ceiling
    assert row["synthetic"]["value"] > 0.6  # the gaze transfers from renders
    assert row["details"]["synthetic"]["trained_on"] == 120


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--refined", "{syn}", "--run", "{syn}"], "--refined and --run"),
        (["--channels", "2"], "--channels 2"),
        (["--step", "5"], "--step 5 needs --run"),
        (["--json", "{missing}/r.json"], "--json"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(folders, args, expected, capsys):
    fill = {"syn": str(folders["synthetic"]), "missing": str(folders["root"] / "nope")}
    argv = ["gap-report", "--real", str(folders["real"]), "--synthetic", str(folders["synthetic"])]
    assert main(argv + [a.format(**fill) for a in args]) == 2
    assert expected in capsys.readouterr().err


def test_a_missing_folder_and_mixed_sizes_are_data_errors(folders, tmp_path):
    with pytest.raises(DataError, match="--synthetic .*no such folder"):
        gap_report(folders["real"], tmp_path / "nope")
    mixed = write_pngs(tmp_path / "mixed", scenes(30, SIZE, 5))
    write_pngs(mixed / "big", scenes(2, 40, 6))
    with pytest.raises(UsageError, match="--real .*different sizes.*--size H W"):
        gap_report(mixed, folders["synthetic"])


def test_a_non_finite_metric_stops_the_report_with_its_name():
    from refinekit.gap.compute import Computed
    from refinekit.gap.summary import summarise

    computed = Computed()
    good = np.linspace(0.1, 0.2, REPLICATES + 1)
    computed.put("kid", "synthetic", good)
    computed.put("kid", "real_holdout", good)
    computed.put("kid", "refined", np.concatenate([[np.nan], good[1:]]))
    with pytest.raises(
        RefinekitError, match="KID .* of refined vs real is not finite in the point estimate"
    ):
        summarise(computed)


@pytest.mark.slow
def test_run_refines_the_synthetic_set_on_the_fly(folders, tmp_path, capsys):
    """--run with a really trained tiny refiner: paired with the synthetic set, saved on request;
    --model with the same refiner exported gives the same numbers."""
    pytest.importorskip("refinekit.inference", reason="refinekit.inference not built yet")
    from conftest import TINY

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--synthetic",
                str(folders["synthetic"]),
                "--real",
                str(folders["real"]),
                "--out",
                str(run),
                "--steps",
                "4",
                *TINY,
                "--pretrain-refiner-steps",
                "4",
                "--pretrain-disc-steps",
                "2",
            ]
        )
        == 0
    )
    capsys.readouterr()
    saved = tmp_path / "refined"
    assert (
        main(
            [
                "gap-report",
                "--real",
                str(folders["real"]),
                "--synthetic",
                str(folders["synthetic"]),
                "--run",
                str(run),
                "--save-refined",
                str(saved),
                "--json",
                str(tmp_path / "g.json"),
                "--bootstrap",
                "50",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out  # not a terminal: the table as plain text on stdout
    assert out.startswith("metric\tbetter\tsynthetic vs real\trefined vs real")
    assert "KID (random features)" in out
    document = json.loads((tmp_path / "g.json").read_text())
    assert all(line in out for line in document["verdict"]["lines"])
    refined = document["sets"]["refined"]
    assert refined["source"] == "run" and refined["paired_with_synthetic"] and refined["count"] == N
    assert refined["model"]["step"] > 0 and Path(refined["model"]["run"]).name == "run"
    assert sorted(p.name for p in saved.iterdir()) == sorted(
        p.name for p in folders["synthetic"].iterdir()
    )
    for m in document["metrics"]:
        assert m["refined"] is not None and np.isfinite(m["refined"]["value"])

    # The same refiner exported to one file gives the same numbers.
    assert main(["export", str(run), str(tmp_path / "refiner.npz")]) == 0
    by_model = gap_report(
        folders["real"], folders["synthetic"], model=tmp_path / "refiner.npz", replicates=50
    )
    assert by_model.document["sets"]["refined"]["source"] == "model"
    np.testing.assert_allclose(
        _numbers(by_model.document), _numbers(document), rtol=1e-6, atol=1e-9
    )


def test_progress_bars_on_a_terminal_show_rate_and_eta(folders, tmp_path, monkeypatch, capsys):
    import refinekit.cli.gap as cli_gap

    monkeypatch.setattr(cli_gap, "interactive", lambda: True)
    code = main(
        [
            "gap-report",
            "--real",
            str(folders["real"]),
            "--synthetic",
            str(folders["synthetic"]),
            "--json",
            str(tmp_path / "gap.json"),
            "--bootstrap",
            "20",
        ]
    )
    assert code == 0
    err = capsys.readouterr().err
    assert re.search(r"\d+/\d+", err) and re.search(r"\d+\.\d/s", err), err[-2000:]
