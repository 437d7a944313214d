"""The shared pieces every command uses: the stop mechanism and provenance."""

import os
import signal
import threading

import pytest

from refinekit import provenance
from refinekit.stop import Interrupted, StopOnSignals


def test_first_signal_is_recorded_second_stops_now():
    with StopOnSignals() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.signum == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    error = stop.interrupted("stopped after step 4; run the same command again to resume")
    assert isinstance(error, Interrupted)
    assert error.exit_code == 128 + signal.SIGTERM == 143
    assert str(error).startswith("SIGTERM: stopped after step 4")


def test_handlers_are_restored_and_worker_threads_install_none():
    before = signal.getsignal(signal.SIGINT)
    with StopOnSignals():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before

    seen = []

    def worker():
        with StopOnSignals() as stop:
            seen.append(stop._old)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [{}]


def test_interrupted_needs_a_request():
    with pytest.raises(RuntimeError):
        StopOnSignals().interrupted("x")


def test_package_versions_name_every_package():
    versions = provenance.package_versions()
    assert set(versions) == {"python", *provenance.PACKAGES}
    assert versions["numpy"] == __import__("numpy").__version__
    assert provenance.package_version("surely-not-installed-package-xyz") is None


def test_public_api_is_reexported_from_the_package():
    import refinekit
    import refinekit.training.loop  # noqa: F401
    from refinekit.gap.run import gap_report
    from refinekit.inference.refiner import load_refiner
    from refinekit.refine import refine_folder
    from refinekit.training.loop import train

    assert refinekit.train is train
    assert refinekit.load_refiner is load_refiner
    assert refinekit.refine_folder is refine_folder
    assert refinekit.gap_report is gap_report
    assert set(refinekit.__all__) <= set(dir(refinekit))
    with pytest.raises(AttributeError):
        refinekit.no_such_name  # noqa: B018


def test_import_changes_no_logging_of_the_host_program():
    import subprocess
    import sys

    code = (
        "import logging, sys; hook = sys.unraisablehook; "
        "logging.getLogger('absl').setLevel(logging.DEBUG); "
        "import refinekit, refinekit.training.checkpoint, refinekit.training.loop; "
        "assert logging.getLogger('absl').level == logging.DEBUG; "
        "assert not logging.getLogger('asyncio').filters; "
        "assert sys.unraisablehook is hook"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_library_train_resumes_like_the_cli(gray16, tmp_path):
    """train() with a mapping takes unspecified settings from the run folder, as the CLI does:
    a run started with a non-default lambda resumes from Python with only its folders given."""
    import refinekit
    from conftest import TINY
    from refinekit.cli import main
    from refinekit.errors import ConfigError

    syn, real = gray16
    run = tmp_path / "run"
    args = ["train", "--synthetic", str(syn), "--real", str(real), "--out", str(run)]
    short = ["--pretrain-refiner-steps", "2", "--pretrain-disc-steps", "2", "--val-fraction", "0"]
    assert main([*args, "--steps", "2", "--lambda-reg", "2.0", *TINY, *short]) == 0
    folders = {"synthetic": str(syn), "real": str(real), "out": str(run)}
    result = refinekit.train({**folders, "steps": 4})
    assert result.step == 8  # 2 + 2 pretraining + 4 adversarial: resumed, not restarted
    with pytest.raises(ConfigError, match="lambda_reg"):
        refinekit.train(refinekit.TrainConfig(**folders, refiner="resnet", steps=6))  # defaults
    # the default kind, auto, would overwrite this run's files with its winner's: refused
    with pytest.raises(ConfigError, match="not an auto run"):
        refinekit.train(refinekit.TrainConfig(**folders, steps=6))


def test_quantise_inverts_to_unit_float_at_both_depths():
    import numpy as np

    from refinekit.io import pixels

    for dtype in (np.uint8, np.uint16):
        stored = np.arange(0, np.iinfo(dtype).max, 257 if dtype == np.uint16 else 1, dtype=dtype)
        back = pixels.quantise(pixels.to_unit_float(stored), 16 if dtype == np.uint16 else 8)
        assert back.dtype == dtype and np.array_equal(back, stored)


def test_pixel_conversions_match_hand_values_on_numpy_and_jax():
    import jax.numpy as jnp
    import numpy as np

    from refinekit.io import pixels

    stored8 = np.array([0, 51, 255], np.uint8)
    stored16 = np.array([0, 13107, 65535], np.uint16)
    for stored in (stored8, stored16):
        for xp in (np, jnp):
            x = xp.asarray(stored)
            np.testing.assert_allclose(np.asarray(pixels.to_unit_float(x)), [0, 0.2, 1], 1e-6)
            np.testing.assert_allclose(
                np.asarray(pixels.to_model_range(x)), [-1, -0.6, 1], atol=1e-6
            )
            assert pixels.to_model_range(x).dtype == np.float32
    model = np.array([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)
    assert pixels.model_to_uint8(model).tolist() == [0, 0, 128, 191, 255, 255]  # 127.5 rounds even
    unit = np.array([-0.5, 0.0, 0.2, 1.0, 7.0], np.float32)
    assert pixels.unit_to_uint8(unit).tolist() == [0, 0, 51, 255, 255]
    # the step's conversion and the sample grid's are inverses on every 8-bit value
    every = np.arange(256, dtype=np.uint8)
    assert np.array_equal(pixels.model_to_uint8(pixels.to_model_range(every)), every)


def test_pad_to_batch_appends_zero_images_only_when_short():
    import numpy as np

    from refinekit.io import pixels

    batch = np.ones((3, 2, 2, 1), np.float32)
    padded = pixels.pad_to_batch(batch, 5)
    assert padded.shape == (5, 2, 2, 1) and padded.dtype == np.float32
    assert np.array_equal(padded[:3], batch) and not padded[3:].any()
    assert pixels.pad_to_batch(batch, 3) is batch
    assert pixels.pad_to_batch(batch, 2) is batch  # never truncates
