"""The training images: both folders decoded with one reading path, quantised to one bit
depth, with the class labels their folders give."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import AUTO_ADA_BELOW, TrainConfig
from ..errors import DataError
from ..io import files, pixels, sets
from . import labels

MIN_TRAIN_SIDE = 4  # TrainConfig's minimum --size


@dataclass
class TrainingData:
    synthetic: np.ndarray  # (N, H, W, C) uint8/uint16
    real: np.ndarray
    info: dict[str, Any]
    skipped: list[str]
    labels: labels.LabelData | None = None  # class ids from the folders (labels.py)


def load_training_data(config: TrainConfig) -> tuple[TrainConfig, TrainingData]:
    """Decode both folders with one reading path; resolves `size` and `channels` in the config."""
    size = check_before_reading(config)
    channels = config.channels
    syn = sets.load_set(
        Path(config.synthetic),
        flag="--synthetic",
        channels=channels,
        size=size,
        strict=config.strict,
        seed=config.seed,
    )
    if channels is None:
        if len(syn.source_channels) > 1:
            raise DataError(
                f"--synthetic {config.synthetic}: mixes gray and colour images; pass --channels 1 or 3"
            )
        channels = syn.images.shape[-1]
    real = sets.load_set(
        Path(config.real),
        flag="--real",
        channels=channels,
        size=size,
        crop=config.real_crop,
        strict=config.strict,
        seed=config.seed,
    )
    depth = max(syn.bit_depth, real.bit_depth)
    info = {
        "synthetic": {
            "folder": str(Path(config.synthetic).absolute()),
            "images": len(syn.paths),
            "skipped": len(syn.skipped),
            "fingerprint": files.fingerprint(syn.paths, Path(config.synthetic)),
        },
        "real": {
            "folder": str(Path(config.real).absolute()),
            "images": len(real.paths),
            "skipped": len(real.skipped),
            "fingerprint": files.fingerprint(real.paths, Path(config.real)),
        },
        "bit_depth": depth,
    }
    config = config.replace(size=tuple(syn.images.shape[1:3]), channels=int(channels))
    if config.augment == "auto":  # resolved here, so the run folder records what was used
        config = config.replace(augment="ada" if len(real.paths) < AUTO_ADA_BELOW else "none")
    found = labels.find_labels(syn.paths, Path(config.synthetic), real.paths, Path(config.real))
    data = TrainingData(
        pixels.quantise(syn.images, depth),
        pixels.quantise(real.images, depth),
        info,
        syn.skipped + real.skipped,
        found,
    )
    return config, data


def check_before_reading(config: TrainConfig) -> tuple[int, int] | None:
    """What can be refused before a pixel is decoded: both folders, one image size, and the
    resource estimate of these settings at that size. Returns the size (None: no readable
    image; decoding names the first bad file)."""
    syn_paths = files.list_images(Path(config.synthetic), "--synthetic")
    files.list_images(Path(config.real), "--real")
    size = config.size
    if size is None:
        sizes = set(sets.probe_sizes(syn_paths).values())
        if len(sizes) > 1:
            listed = ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:4])
            raise DataError(
                f"--synthetic {config.synthetic}: images have {len(sizes)} different sizes ({listed}); "
                "pass --size H W to train at one size"
            )
        size = sizes.pop() if sizes else None  # none readable: load_set names the first bad file
        if size is not None and min(size) < MIN_TRAIN_SIDE:
            raise DataError(
                f"--synthetic {config.synthetic}: the images are {size[0]}x{size[1]} pixels, "
                f"smaller than the {MIN_TRAIN_SIDE}x{MIN_TRAIN_SIDE} minimum for training; pass "
                f"--size H W (each >= {MIN_TRAIN_SIDE}) to resize them"
            )
    if size is not None:  # before a pixel is decoded (limits.py; --size was checked earlier)
        from ..limits import check_resources

        check_resources(config, size)
    return size
