"""What a training step works on: the `TrainState` pytree (everything that changes), the data
sets as they live on the device (`DeviceData`, padded to shared lengths), and the mesh."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from flax import struct
from jax.sharding import Mesh

from . import replay
from .ada import AdaState


@struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar: global step over all phases
    key: jax.Array  # uint32 raw key data (restorable by orbax like any array)
    refiner: Any  # nnx.State of the refiner's parameters
    disc: Any  # nnx.State of the discriminator's parameters
    opt_refiner: Any
    opt_disc: Any
    buffer: replay.HistoryBuffer
    ada: AdaState  # augmentation probability p (ADA adapts it) and its overfitting signal
    first_bad_step: jax.Array  # int32: first step with a non-finite loss, -1 if none
    ema: Any = None  # moving average of `refiner` (training/ema.py): samples, refine, export
    extras: Any = None  # dict of further state (e.g. a frozen classifier), {} by default

    if TYPE_CHECKING:  # added by struct.dataclass at runtime; its stubs do not declare it

        def replace(self, **updates: Any) -> TrainState: ...


def bucket_length(n: int) -> int:
    """The padded length of an n-image training set: a power of two from 64 to 1024, then a
    multiple of 1024. Sets of nearby sizes then share compiled steps (and the persistent
    compile cache: a test suite's or a user's second run on a slightly larger set starts
    without compiling); at most 1024 padding images beyond 1024."""
    if n <= 1024:
        return max(64, 1 << max(n - 1, 0).bit_length())
    return -(-n // 1024) * 1024


def pad_to_bucket(data: DeviceData) -> DeviceData:
    """Host arrays padded with zero images (labels -1) to bucket_length, with their counts."""

    def pad(array, fill):
        if array is None:
            return None
        extra = bucket_length(len(array)) - len(array)
        widths = [(0, extra)] + [(0, 0)] * (np.ndim(array) - 1)
        return np.pad(np.asarray(array), widths, constant_values=fill)

    return DeviceData(
        pad(data.synthetic, 0),
        pad(data.real, 0),
        pad(data.synthetic_labels, -1),
        pad(data.real_labels, -1),
        np.asarray(len(data.synthetic), np.int32),
        np.asarray(len(data.real), np.int32),
        data.adversarial_start,
    )


@struct.dataclass
class DeviceData:
    synthetic: jax.Array  # (N, H, W, C) uint8 or uint16
    real: jax.Array  # (M, H, W, C) uint8 or uint16
    # int32 (N,) class index, -1 without classes (numpy until loop.py's jax.device_put)
    synthetic_labels: jax.Array | np.ndarray | None = None
    real_labels: jax.Array | np.ndarray | None = None  # int32 (M,)
    # How many leading images are real data when the arrays are padded (pad_to_bucket); None:
    # all of them. Batches are drawn from these only.
    synthetic_count: jax.Array | np.ndarray | None = None  # int32 ()
    real_count: jax.Array | np.ndarray | None = None  # int32 ()
    # The first adversarial step (the two pretraining lengths), passed as a value rather than
    # read from the config as a constant: runs that differ only in how long they pretrain then
    # share one compiled adversarial step. None: the config's.
    adversarial_start: jax.Array | np.ndarray | None = None  # int32 ()


def make_mesh() -> Mesh:
    """A 1-D data-parallel mesh over all local devices (and all hosts after jax.distributed)."""
    return Mesh(np.asarray(jax.devices()), ("data",))
