"""Names from data never become markup in the HTML pages refinekit writes.

A tiny training run whose --out folder and class folders carry HTML (a run page), and a gap
report on those class folders refined by that run (class table, confusion matrix and the
"changed class" captions), are parsed with html.parser: no script element, no on* attribute,
no element or attribute made from the hostile names, which must appear as plain text.
"""

from __future__ import annotations

import pytest

from conftest import TINY, write_images
from helpers import assert_inert
from refinekit.cli import main

RUN_NAME = "run<svg onload=alert(1)>"
CLASSES = ("<svg onload=alert(3)>", 'b" onmouseover="alert(4)')
HOSTILE = (RUN_NAME, *CLASSES)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    for seed, name in enumerate(CLASSES):
        write_images(root / "syn" / name, 12, (16, 16), seed, smooth=True)
        write_images(root / "real" / name, 12, (16, 16), 10 + seed, smooth=False)
    run = root / RUN_NAME
    args = [
        "train",
        *("--synthetic", str(root / "syn"), "--real", str(root / "real"), "--out", str(run)),
        *("--steps", "10", *TINY),
        *("--pretrain-refiner-steps", "6", "--pretrain-disc-steps", "4"),
        *("--classifier-steps", "8"),
    ]
    assert main(args) == 0
    return root, run


@pytest.mark.slow
def test_the_run_page_shows_hostile_run_and_folder_names_as_text(hostile_run):
    _, run = hostile_run
    html = (run / "index.html").read_text()
    assert "<svg onload" not in html
    assert_inert(html, (RUN_NAME,))


@pytest.mark.slow
def test_the_gap_report_shows_hostile_class_names_as_text(hostile_run):
    root, run = hostile_run
    out = root / "report.html"
    args = [
        "gap-report",
        *("--real", str(root / "real"), "--synthetic", str(root / "syn")),
        *("--run", str(run), "--step", "latest", "--bootstrap", "20", "--html", str(out)),
    ]
    assert main(args) == 0
    html = out.read_text()
    assert "<svg onload" not in html and 'alt="changed class"' in html  # captions shown
    assert_inert(html, CLASSES)


def test_chart_ticks_are_round_and_uncomputed_losses_are_gaps(tmp_path):
    from refinekit.gap import svg
    from refinekit.training import watch_page

    values, step = svg.ticks(*svg.nice_range(0.853, 0.957))
    assert step == 0.05 and [svg.tick_text(v, step) for v in values] == [
        "0.85",
        "0.90",
        "0.95",
        "1.00",
    ]
    assert svg.ticks(0, 390)[1] == 100 and svg.ticks(0.0, 1.0)[1] == 0.2
    records = [
        {"step": 10, "phase": "pretrain_refiner", "refiner_adversarial": 0.0},
        {"step": 20, "phase": "adversarial", "refiner_adversarial": 1.5},
    ]
    (series,) = watch_page._series(records, watch_page.REFINER_ADVERSARIAL)
    assert list(series.points) == [(10, None), (20, 1.5)]  # not computed in pretraining: a gap
    chart = svg.line_chart(
        [svg.Series("a", [(0, 1.0), (1, None), (2, 2.0), (3, 3.0)], "#000")],
        title="t",
        x_label="x",
        y_label="y",
    )
    assert chart.count("<polyline") == 1 and chart.count("<circle") == 1  # broken at the gap
