"""gap-report's argument checks, all made before any image is read or any file written."""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from . import inputs


def check_arguments(
    real,
    synthetic,
    refined,
    run,
    step,
    model,
    json_path,
    html_path,
    channels,
    replicates,
    batch_size,
    max_images,
    save_refined,
    real_labelled=None,
) -> None:
    if refined is not None and (run is not None or model is not None):
        raise UsageError(
            "--refined and --run/--model cannot be used together: give a folder of "
            "refined images, or a refiner to refine the synthetic set with"
        )
    if run is not None and model is not None:
        raise UsageError("--run and --model cannot be used together: pick one refiner")
    if step is not None and run is None:
        raise UsageError(f"--step {step} needs --run")
    if save_refined is not None and run is None and model is None:
        raise UsageError(
            f"--save-refined {save_refined} needs --run or --model (refinement on the fly)"
        )
    if channels not in (None, 1, 3):
        raise UsageError(f"--channels {channels}: must be 1 (gray) or 3 (RGB)")
    if replicates < 20:
        raise UsageError(f"--bootstrap {replicates}: use at least 20 resamples for a 95% interval")
    if batch_size < 1:
        raise UsageError(f"--batch-size {batch_size}: must be at least 1")
    if max_images is not None and max_images < 2 * inputs.MIN_IMAGES:
        raise UsageError(f"--max-images {max_images}: must be at least {2 * inputs.MIN_IMAGES}")
    check_outputs(
        real, synthetic, refined, run, model, json_path, html_path, save_refined, real_labelled
    )
    if real_labelled is not None:
        from .split import check_layout

        check_layout(real_labelled, synthetic)


def check_outputs(
    real, synthetic, refined, run, model, json_path, html_path, save_refined, real_labelled=None
):
    """Before any work: every output is writable and none lands on an input (guard.py)."""
    from ..io import guard

    read = [
        ("--real", real),
        ("--synthetic", synthetic),
        ("--refined", refined),
        ("--run", run),
        ("--model", model),
        ("--real-labelled", real_labelled),
    ]
    for flag, path in (("--json", json_path), ("--html", html_path)):
        if path is not None:
            guard.check_output_file(flag, Path(path))
            guard.check_not_input(flag, Path(path), read)
    if json_path is not None and html_path is not None:
        if guard.real_path(Path(json_path)) == guard.real_path(Path(html_path)):
            raise UsageError(f"--json {json_path} and --html {html_path} are the same file")
    if save_refined is not None:
        guard.check_output_folder("--save-refined", Path(save_refined))
        guard.check_not_input("--save-refined", Path(save_refined), read, output_is_folder=True)
        for flag, path in (("--json", json_path), ("--html", html_path)):
            if path is not None:
                guard.check_not_input(flag, Path(path), [("--save-refined", save_refined)])
