"""Data parallelism with jax.sharding: 4 forced CPU devices train the same model as 1 device."""

import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from conftest import write_images
from helpers import ARGS, _final_state
from refinekit.cli import main

pytestmark = pytest.mark.slow  # multi-device and multi-process training runs


def _flags_with(*extra: str) -> str:
    """This process's XLA_FLAGS (the suite's compile level) without a forced device count."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
    return " ".join(kept + list(extra))


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    """Both tests' data and their reference: the same run on this process's one device."""
    root = tmp_path_factory.mktemp("sharding")
    syn = write_images(root / "syn", 16, (16, 16), 0, smooth=True)
    real = write_images(root / "real", 16, (16, 16), 1, smooth=False)
    one = root / "one"
    assert (
        main(["train", "--synthetic", str(syn), "--real", str(real), "--out", str(one), *ARGS]) == 0
    )
    return syn, real, one


def test_four_devices_give_the_same_parameters_as_one(one_device, tmp_path):
    syn, real, one = one_device
    four = tmp_path / "four"
    env = {
        **os.environ,
        "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": _flags_with("--xla_force_host_platform_device_count=4"),
    }
    code = "from refinekit.cli import main; import jax, sys; assert jax.device_count() == 4; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "train",
            "--synthetic",
            str(syn),
            "--real",
            str(real),
            "--out",
            str(four),
            *ARGS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    devices = next(line for line in done.stderr.splitlines() if "devices:" in line).split(
        "devices:"
    )[1]
    assert len(devices.split(",")) == 4, done.stderr
    (s1, a), (s4, b) = _final_state(one), _final_state(four)
    assert s1 == s4 == 12
    for x, y in zip(
        jax.tree.leaves(a.refiner) + jax.tree.leaves(a.disc),
        jax.tree.leaves(b.refiner) + jax.tree.leaves(b.disc),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)
    assert int(a.buffer.count) == int(b.buffer.count)
    metrics = [json.loads(line) for line in (four / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all(np.isfinite(m.get("disc_real", 0.0)) for m in metrics)


def test_two_processes_with_jax_distributed_match_one(one_device, tmp_path):
    """Two local processes joined by jax.distributed (as two hosts would be) train the same model."""
    import socket

    syn, real, one = one_device
    two = tmp_path / "two"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for pid in range(2):
        env = {
            **os.environ,
            "JAX_PLATFORMS": "cpu",
            "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}",
            "JAX_NUM_PROCESSES": "2",
            "JAX_PROCESS_ID": str(pid),
            # A process whose peer never comes stops with an error naming the barrier, well
            # before this test gives up on it.
            "REFINEKIT_PROCESS_WAIT_S": "150",
        }
        env["XLA_FLAGS"] = _flags_with()  # one device each
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "refinekit",
                    "train",
                    "--synthetic",
                    str(syn),
                    "--real",
                    str(real),
                    "--out",
                    str(two),
                    *ARGS,
                ],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs: dict[int, tuple[str, str]] = {}
    deadline = time.monotonic() + 360
    timed_out = False
    try:
        for i, proc in enumerate(procs):
            outputs[i] = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:  # a failed or timed-out peer must not outlive the test (nor warn in the next)
        for i, proc in enumerate(procs):
            if proc.poll() is None:
                proc.kill()
            if i not in outputs:
                outputs[i] = proc.communicate()
    report = "\n".join(
        f"--- process {i} (exit {procs[i].returncode}) stdout:\n{out}\n--- its stderr:\n{err}"
        for i, (out, err) in sorted(outputs.items())
    )
    assert not timed_out, f"the two processes did not finish in 360 s:\n{report}"
    for proc in procs:
        assert proc.returncode == 0, report
    err = outputs[1][1]
    devices = next(line for line in err.splitlines() if "devices:" in line).split("devices:")[1]
    assert len(devices.split(",")) == 2, err  # one global mesh over both processes' devices
    (s1, a), (s2, b) = _final_state(one), _final_state(two)
    assert s1 == s2 == 12
    for x, y in zip(
        jax.tree.leaves(a.refiner) + jax.tree.leaves(a.disc),
        jax.tree.leaves(b.refiner) + jax.tree.leaves(b.disc),
        strict=True,
    ):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-4, atol=2e-5)
