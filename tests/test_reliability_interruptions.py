"""Interruptions for real: `kill -9`, SIGINT and SIGTERM sent to running `refinekit` processes.

Training: one run folder is killed again and again (once while orbax is writing a checkpoint,
held there by a hook in the subprocess), stopped with Ctrl-C, and finished; every restart must
resume from the last complete checkpoint, and the final state must be bit-identical to an
uninterrupted run. Refinement: one OUT folder is killed and stopped at seeded random moments;
after each, every file a reader could take for an output is complete and equal to the
uninterrupted run's, the manifest agrees with the disk, and the last run completes the job.
The moments are seeded (`random.Random`), so a failure reproduces.
"""

import hashlib
import json
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from refinekit import TrainConfig
from refinekit.cli import main
from refinekit.io.atomic import temp_target
from refinekit.io.files import is_image_path
from refinekit.refine.manifest import MANIFEST_NAME
from refinekit.runtime import user_environment
from refinekit.training import checkpoint
from refinekit.training.state import make_mesh
from refinekit.training.steps import StepFunctions

pytestmark = pytest.mark.slow  # kill-and-resume in subprocesses

DEADLINE_S = 180  # generous: only a hung process reaches it; nothing is timed

_CLI = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path

    stall_step, marker = os.environ.get("RK_STALL_AT_STEP"), os.environ.get("RK_STALL_MARKER")
    if stall_step:
        # Hold the process inside orbax's checkpoint write (after the config item is written to
        # the temporary folder, before the folder is renamed into place) so it is killed there.
        from orbax.checkpoint import handlers

        original = handlers.JsonCheckpointHandler._save_fn

        async def stalled(self, item, directory):
            await original(self, item, directory)
            if f"/{stall_step}." in str(directory):
                Path(marker).write_text(str(directory))
                time.sleep(600)

        handlers.JsonCheckpointHandler._save_fn = stalled

    if os.environ.get("RK_FAKE_REFINER"):
        import refinekit.cli.refine as cli_refine

        class Slow:
            channels, batch_size, train_size = 3, 2, (16, 16)
            model_id = {"run": "/runs/fake", "step": 1}

            def __call__(self, images):
                time.sleep(0.02)
                return 1.0 - images

        cli_refine._load_refiner = lambda *args: Slow()

    from refinekit.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


class Cli:
    """`refinekit ...` in a subprocess whose stderr lines are collected as they come."""

    def __init__(self, script: Path, args: list[str], **env: str):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            # XLA_FLAGS as the user set them, not as earlier in-process commands left them: the
            # child picks its command's own XLA:CPU defaults, as it would from a shell
            env={**user_environment(), **env},
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_for(self, ready, what: str) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while not ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                code = self.stop(signal.SIGKILL)
                pytest.fail(f"no {what} (the process ended with code {code}):\n{self.err}")
            time.sleep(0.002)

    def finish(self) -> int:
        """Wait for the command to end by itself; its exit code."""
        code = self.proc.wait(DEADLINE_S)
        self.reader.join(10)
        self.proc.stderr.close()
        return code

    def stop(self, signum: int) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(DEADLINE_S)
        self.reader.join(10)
        self.proc.stderr.close()
        return code

    @property
    def err(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def cli_script(tmp_path):
    path = tmp_path / "cli.py"
    path.write_text(_CLI)
    return path


# ---------------------------------------------------------------------------------------------
# train


def _train_args(syn, real, out):
    return [
        "train",
        "--synthetic",
        str(syn),
        "--real",
        str(real),
        "--out",
        str(out),
        "--steps",
        "50",
        *TINY,
        "--pretrain-refiner-steps",
        "6",
        "--pretrain-disc-steps",
        "4",
        "--log-every",
        "1",
        "--checkpoint-every",
        "2",
        "--sample-every",
        "8",
    ]


TOTAL_STEPS = 60


def _final_state(run):
    config = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    fns = StepFunctions(config, (*config.size, config.channels), make_mesh())
    step = checkpoint.steps(run)[-1]
    return step, jax.device_get(checkpoint.restore(run, step, fns.init_state()))


def _logged_steps(cli: Cli) -> list[int]:
    # "step 12/36 adversarial: ..." (and "step 12 scores: ..." at checkpoints)
    return [int(m.group(1)) for line in cli.lines if (m := re.match(r"step (\d+)[/ ]", line))]


def _resumed_from(err: str) -> int | None:
    match = re.search(r"resuming from step (\d+)", err)
    return int(match.group(1)) if match else None


def test_train_killed_anywhere_resumes_from_its_last_checkpoint_bit_identically(
    gray16, tmp_path, cli_script, monkeypatch
):
    syn, real = gray16
    # Every run is a process of its own, as from a shell, with a compilation cache of this test's:
    # this process's XLA backend may have started with another command's flags (refine's), and
    # XLA:CPU's fusions for other flags round differently in the last bit.
    monkeypatch.setenv("REFINEKIT_COMPILE_CACHE", str(tmp_path / "xla-cache"))
    reference = tmp_path / "reference"
    first = Cli(cli_script, _train_args(syn, real, reference))
    assert first.finish() == 0, first.err

    run = tmp_path / "run"
    rng = random.Random(6)

    # 1. kill -9 while orbax writes the checkpoint of step 12 (after 2, 4, ..., 10 are complete).
    marker = tmp_path / "in_save"
    cli = Cli(
        cli_script, _train_args(syn, real, run), RK_STALL_AT_STEP="12", RK_STALL_MARKER=str(marker)
    )
    cli.wait_for(marker.exists, "the checkpoint write of step 12")
    assert cli.stop(signal.SIGKILL) == -signal.SIGKILL
    assert checkpoint.steps(run) == [6, 8, 10]  # the interrupted one is not a checkpoint
    assert any(
        p.name.startswith("12.") for p in (run / "checkpoints").iterdir()
    )  # its temporary folder

    # 2. kill -9 / Ctrl-C / kill -9 at seeded random steps; each start resumes from the last
    #    complete checkpoint.
    for action in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        last = checkpoint.steps(run)[-1]
        target = min(last + rng.randint(1, 9), TOTAL_STEPS - 20)  # leave time to be interrupted
        cli = Cli(cli_script, _train_args(syn, real, run))
        cli.wait_for(
            lambda t=target, c=cli: any(s >= t for s in _logged_steps(c)), f"step {target}"
        )
        time.sleep(rng.uniform(0, 0.01))
        code = cli.stop(action)
        err = cli.err
        assert _resumed_from(err) == last, err
        assert "Traceback" not in err
        if action == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            assert code == 130, err
            stopped = int(
                re.search(r"SIGINT: stopped at step (\d+) and saved a checkpoint", err).group(1)
            )
            assert "run the same command again to resume" in err
            assert checkpoint.steps(run)[-1] == stopped
        checkpoint.verify(run, checkpoint.steps(run)[-1])

    # 3. The last run finishes the job.
    last = checkpoint.steps(run)[-1]
    final = Cli(cli_script, _train_args(syn, real, run))
    assert final.finish() == 0, final.err
    (s1, a), (s2, b) = _final_state(reference), _final_state(run)
    assert s1 == s2 == TOTAL_STEPS
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    logged = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(
        range(1, TOTAL_STEPS + 1)
    )  # every step once: lines past a checkpoint were trimmed
    leftovers = [
        p.name
        for folder in (run, run / "samples", run / "checkpoints")
        for p in folder.iterdir()
        if "tmp" in p.name
    ]
    assert not leftovers, leftovers  # temporaries of killed writes are removed on resume
    assert last < TOTAL_STEPS


# ---------------------------------------------------------------------------------------------
# refine


def _make_input(root: Path) -> Path:
    rng = np.random.default_rng(3)
    for i in range(48):
        folder = root / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
            folder / f"{i:03d}.png"
        )
        if i % 6 == 0:
            (folder / f"{i:03d}.json").write_text(json.dumps({"label": i}))
    Image.fromarray(rng.integers(0, 65536, (12, 20), dtype=np.uint16)).save(root / "deep.png")
    (root / "labels.csv").write_text("name,label\n")
    return root


def _outputs(out: Path) -> dict[str, bytes]:
    return {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith("refinekit-manifest")
    }


def _check_consistent(out: Path, reference: dict[str, bytes], *, temporaries_allowed: bool) -> int:
    """What a reader of OUT sees after an interruption; returns the number of complete files."""
    complete = 0
    for rel, data in _outputs(out).items():
        name = rel.rsplit("/", 1)[-1]
        if temp_target(name) is not None:
            assert temporaries_allowed, f"{rel}: a temporary file left by a clean stop"
            assert name.startswith(".") and not is_image_path(Path(name)), (
                rel
            )  # never mistaken for one
            continue
        assert data == reference[rel], f"{rel}: not the uninterrupted run's bytes (partial?)"
        complete += 1
    records = [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]
    for record in records:
        if record["action"] in ("refined", "copied"):
            on_disk = (out / record["output"]).read_bytes()
            assert hashlib.sha256(on_disk).hexdigest() == record["output_sha256"], record["output"]
    return complete


def test_refine_killed_and_stopped_at_random_moments_never_leaves_a_partial_output(
    tmp_path, cli_script, monkeypatch
):
    import refinekit.cli.refine as cli_refine

    class Fast:
        channels, batch_size, train_size = 3, 2, (16, 16)
        model_id = {"run": "/runs/fake", "step": 1}

        def __call__(self, images):
            return 1.0 - images

    monkeypatch.setattr(cli_refine, "_load_refiner", lambda *args: Fast())
    inp = _make_input(tmp_path / "syn")
    assert main(["refine", str(inp), str(tmp_path / "reference"), "--run", "x"]) == 0
    reference = _outputs(tmp_path / "reference")
    out = tmp_path / "out"
    args = ["refine", str(inp), str(out), "--run", "x", "--workers", "2"]

    rng = random.Random(11)
    complete = 0
    for action in (signal.SIGKILL, signal.SIGTERM, signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        start = (
            (out / MANIFEST_NAME).read_text().count("\n") if (out / MANIFEST_NAME).exists() else 0
        )
        wanted = start + rng.randint(1, 8)
        cli = Cli(cli_script, args, RK_FAKE_REFINER="1")
        cli.wait_for(
            lambda n=wanted: (
                (out / MANIFEST_NAME).exists()
                and (out / MANIFEST_NAME).read_text().count("\n") >= n
            ),
            f"{wanted} manifest lines",
        )
        time.sleep(rng.uniform(0, 0.03))
        code = cli.stop(action)
        err = cli.err
        assert "Traceback" not in err, err
        if action == signal.SIGKILL:
            assert code == -signal.SIGKILL
        else:
            name = signal.Signals(action).name
            assert code == 128 + action, err
            assert (
                f"{name}: stopped after" in err and "run the same command again to resume" in err
            ), err
        now = _check_consistent(out, reference, temporaries_allowed=action == signal.SIGKILL)
        assert now >= complete  # nothing complete was lost
        complete = now
    assert complete < len(reference), "every round ran to the end: nothing was interrupted"

    assert main(["refine", str(inp), str(out), "--run", "x"]) == 0
    assert _outputs(out) == reference
    assert _check_consistent(out, reference, temporaries_allowed=False) == len(reference)
