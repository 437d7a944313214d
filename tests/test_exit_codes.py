"""Exit codes as the README states them: each command's common mistakes exit 2 with one line
naming the flag or file, before anything is written; failures exit 1.

Everything runs through the CLI's entry (`refinekit.cli.main`, what the `refinekit` script
calls) and needs no training: a run folder here is the layout the cheap checks read (numbered
checkpoint folders), and each mistake is caught before a model would be loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import write_images
from refinekit.cli import main


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exit-codes")
    syn = write_images(root / "syn", 4, (16, 16), 0, smooth=True)
    real = write_images(root / "real", 4, (16, 16), 1, smooth=False)
    run = root / "run"
    for step in (10, 16):  # what `refinekit train` leaves: RUN/checkpoints/STEP/
        (run / "checkpoints" / str(step)).mkdir(parents=True)
    (run / "config.json").write_text("{}")
    return {"root": root, "syn": syn, "real": real, "run": run, "missing": root / "missing"}


def _fails_with_usage_error(argv: list[str], expected: str, capsys, sets) -> None:
    before = sorted(p.relative_to(sets["root"]) for p in sets["root"].rglob("*"))
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"{argv}: exit {code}\n{err}"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{argv}: not one line:\n{err}"
    assert expected in lines[0], f"{argv}: {lines[0]!r} does not name {expected!r}"
    after = sorted(p.relative_to(sets["root"]) for p in sets["root"].rglob("*"))
    assert after == before, f"{argv}: wrote {set(after) - set(before)}"


def _args(argv: list[str], sets: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in sets.items()}) for a in argv]


TRAIN = ["train", "--synthetic", "{syn}", "--real", "{real}", "--out", "{root}/new-run"]
REFINE = ["refine", "{syn}", "{root}/out"]
GAP = ["gap-report", "--real", "{real}", "--synthetic", "{syn}"]

CASES = [
    # train
    (["train", "--real", "{real}", "--out", "{root}/new-run"], "--synthetic"),
    (["train", "--synthetic", "{missing}", "--real", "{real}", "--out", "{root}/r"], "missing"),
    ([*TRAIN, "--optimizer", "adamw"], "--optimizer"),
    ([*TRAIN, "--refiner", "gan"], "--refiner"),
    ([*TRAIN, "--precision", "fp8"], "--precision"),
    ([*TRAIN, "--batch-size", "3"], "--batch-size"),
    ([*TRAIN, "--steps", "-1"], "--steps"),
    ([*TRAIN, "--lambda-reg", "much"], "--lambda-reg"),
    ([*TRAIN, "--val-fraction", "0.9"], "--val-fraction"),
    ([*TRAIN, "--augment-policy", "bogus,color"], "--augment-policy"),
    ([*TRAIN, "--config", "{missing}/c.toml"], "--config"),
    ([*TRAIN, "--no-such-flag"], "--no-such-flag"),
    # refine
    (["refine", "{syn}"], "OUT"),
    (["refine", "{missing}", "{root}/out", "--run", "{run}"], "missing"),
    ([*REFINE], "--run"),
    ([*REFINE, "--run", "{missing}"], "--run"),
    ([*REFINE, "--run", "{real}"], "--run"),  # a folder that is not a run
    ([*REFINE, "--run", "{run}", "--step", "123"], "--step 123"),
    ([*REFINE, "--run", "{run}", "--step", "soon"], "--step"),
    ([*REFINE, "--model", "{missing}/m.npz"], "--model"),
    ([*REFINE, "--run", "{run}", "--shard", "5/4"], "--shard"),
    ([*REFINE, "--run", "{run}", "--jpeg-quality", "101"], "--jpeg-quality"),
    ([*REFINE, "--run", "{run}", "--workers", "-1"], "--workers"),
    # export
    (["export", "{run}"], "FILE"),
    (["export", "{missing}", "{root}/m.npz"], "RUN"),
    (["export", "{real}", "{root}/m.npz"], "RUN"),
    (["export", "{run}", "{root}/m.npz", "--step", "123"], "--step 123"),
    # gap-report
    (["gap-report", "--synthetic", "{syn}"], "--real"),
    (["gap-report", "--real", "{missing}", "--synthetic", "{syn}"], "missing"),
    ([*GAP, "--json", "{root}/r.out", "--html", "{root}/r.out"], "same file"),
    ([*GAP, "--bootstrap", "5"], "--bootstrap"),
    ([*GAP, "--channels", "2"], "--channels"),
    ([*GAP, "--run", "{real}"], "--run"),
    ([*GAP, "--run", "{run}", "--step", "123"], "--step 123"),
    # bench
    (["bench", "--repeats", "0"], "--repeats"),
    (["bench", "--repeats", "-3"], "--repeats"),
    (["bench", "--mode", "fast"], "--mode"),
    (["bench", "--preset", "huge"], "--preset"),
    (["bench", "--precision", "fp8"], "--precision"),
    # the group
    (["fly"], "fly"),
]


@pytest.mark.parametrize(
    ("argv", "expected"), CASES, ids=[" ".join(a[:1] + a[-2:]) for a, _ in CASES]
)
def test_a_mistake_exits_2_with_one_line_naming_it(argv, expected, sets, capsys):
    _fails_with_usage_error(_args(argv, sets), expected, capsys, sets)


def test_a_run_folder_without_checkpoints_is_named_before_the_input_is_read(sets, capsys):
    """refine checks --run before scanning IN: a missing IN is not reported, the run is."""
    argv = _args(["refine", "{missing}", "{root}/out", "--run", "{real}"], sets)
    _fails_with_usage_error(argv, "--run", capsys, sets)


def test_a_bad_augment_policy_leaves_no_run_folder(sets, capsys):
    argv = _args([*TRAIN, "--augment-policy", "color,bogus"], sets)
    _fails_with_usage_error(argv, "bogus", capsys, sets)
    assert not (sets["root"] / "new-run").exists()
