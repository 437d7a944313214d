"""A trained refiner as a plain callable: restored from a run, or from an exported file.

An export is one .npz file holding the config (JSON) and the refiner's parameters only (no
discriminator, optimizer state or buffer), so it is small and loads with no run folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from ..config import TrainConfig
from ..errors import CheckpointError, RefinekitError, UsageError
from ..io.pixels import pad_to_batch
from ..io.regular import read_own_json
from ..training import checkpoint, selection
from .export_file import EXPORT_FORMAT, flatten


class Refiner:
    """Refines float32 NxHxWxC images in [0, 1] (C == `channels`) at any size.

    Calls are split into batches of `batch_size` (the last padded), so each image shape
    compiles once; batches are sharded over all local devices. A refiner with per-image draws
    (`draws_per_image`: a camera model) takes a `salt` that picks the draws; another salt reuses
    the compiled program.
    """

    def __init__(
        self,
        config: TrainConfig,
        params: Any,
        model_id: dict,
        batch_size: int = 32,
        micro_batch: int | None = None,
        winograd: bool | None = None,
    ):
        import jax
        from flax import nnx
        from jax.sharding import NamedSharding, PartitionSpec

        from ..nn import microbatch
        from ..nn.models import build_models
        from ..refiners import draws_per_image, set_salt
        from ..training.state import make_mesh

        self.config = config
        # Both are set in a trained run's config (train.load_training_data); read_export
        # checks channels but not size, so a None size still fails in tuple() as before.
        assert config.channels is not None
        self.channels = int(config.channels)
        self.train_size = tuple(cast("tuple[int, int]", config.size))
        self.model_id = model_id
        self.selection_reason = ""  # why this checkpoint of a run (set by load_refiner)
        self.selection_warning: str | None = None  # labels at risk (selection.Choice.warning)
        mesh = make_mesh()
        devices = mesh.devices.size
        self.batch_size = max(
            devices, -(-batch_size // devices) * devices
        )  # a multiple of the devices
        self.micro_batch = micro_batch  # None: microbatch.resolve picks per image size
        # Winograd 3x3 convolutions: faster forward passes on XLA:CPU (winograd.py); elsewhere the
        # backend's own convolution (cuDNN picks its algorithms itself).
        self.winograd = jax.default_backend() == "cpu" if winograd is None else bool(winograd)
        refiner, _ = build_models(config, self.channels, seed=0, winograd=self.winograd)
        self.draws_per_image = draws_per_image(refiner)
        self._graph, _ = nnx.split(refiner, nnx.Param)
        self._params = jax.device_put(params, NamedSharding(mesh, PartitionSpec()))
        self._batch_sharding = NamedSharding(mesh, PartitionSpec("data"))
        graph = self._graph

        def apply(params, images, salt):
            model = nnx.merge(graph, params)
            set_salt(model, salt)
            size = microbatch.resolve(
                micro_batch, images.shape[1], images.shape[2]
            )  # at trace time
            return microbatch.forward(lambda x: (model(x * 2.0 - 1.0) + 1.0) * 0.5, images, size)

        self._apply = jax.jit(apply)

    def micro_batch_for(self, height: int, width: int) -> int:
        """Images per micro-batch for images of this size (0: whole batches)."""
        from ..nn import microbatch

        return microbatch.resolve(self.micro_batch, height, width)

    @property
    def params(self) -> Any:
        return self._params

    def __call__(self, images: np.ndarray, salt: int = 0) -> np.ndarray:
        # A batch at a time, the next started before the last is fetched: however many images
        # come in, at most two batches of results wait on the device.
        images = np.asarray(images, np.float32)
        done: list[np.ndarray] = []
        waiting: Callable[[], np.ndarray] | None = None
        for start in range(0, max(len(images), 1), self.batch_size):
            started = self.dispatch(images[start : start + self.batch_size], salt)
            if waiting is not None:
                done.append(waiting())
            waiting = started
        assert waiting is not None  # the loop runs at least once (range up to max(len, 1))
        done.append(waiting())
        return np.concatenate(done)

    def dispatch(self, images: np.ndarray, salt: int = 0) -> Callable[[], np.ndarray]:
        """Start refining `images` and return a function that waits for the result.

        JAX runs the batches asynchronously, so a caller can prepare (or write out) other
        images meanwhile: refine keeps the device busy by starting batch k+1 before it waits
        for batch k. The same checks and result as `__call__`.
        """
        import jax

        images = np.asarray(images, np.float32)
        if images.ndim != 4 or images.shape[-1] != self.channels:
            raise UsageError(
                f"refiner expects N x H x W x {self.channels} images, got shape {images.shape}"
            )
        if not len(images):
            empty = images.copy()
            return lambda: empty
        started = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            n = len(chunk)
            batch = jax.device_put(pad_to_batch(chunk, self.batch_size), self._batch_sharding)
            started.append((self._apply(self._params, batch, np.int32(salt)), n))

        def result() -> np.ndarray:
            return np.clip(np.concatenate([np.asarray(out)[:n] for out, n in started]), 0.0, 1.0)

        return result


def _refiner_params_from_run(run: Path, step: int) -> tuple[TrainConfig, Any]:
    """The config and refiner weights of checkpoint `step`: only the refiner is built (as
    shapes) and only its weights are read, not the whole training state."""
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from ..nn.models import build_models
    from ..training.state import make_mesh

    try:
        config = TrainConfig.from_dict(
            checkpoint.load_config(run, step), source=f"{run} step {step} config", saved=True
        )
    except UsageError as exc:
        raise CheckpointError(str(exc)) from exc
    # A run's saved config has both resolved (training's load_training_data).
    assert config.size is not None and config.channels is not None
    channels = int(config.channels)
    refiner = nnx.eval_shape(lambda: build_models(config, channels, seed=0)[0])
    _, shapes = nnx.split(refiner, nnx.Param)
    replicated = NamedSharding(make_mesh(), PartitionSpec())
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), shapes
    )
    # The moving average of the weights (training/ema.py) is what samples and scores used.
    params = checkpoint.restore_field(run, step, ("ema", "refiner"), target)
    return config, params


def load_refiner(
    run: Path | None = None,
    step: int | str | None = None,
    model: Path | None = None,
    batch_size: int = 32,
    micro_batch: int | None = None,
    winograd: bool | None = None,
) -> Refiner:
    """The refiner of a run's checkpoint, or of an exported file.

    `step`: None = the run's best healthy checkpoint (training/selection.py), "latest", or a
    step number; the chosen step's reason is in `refiner.selection_reason`.

    `micro_batch`: images per forward micro-batch (None: microbatch.resolve picks by image size).
    `winograd`: Winograd 3x3 convolutions (None: on the CPU backend only).

    Raises CheckpointError/UsageError when there is no valid model: never random weights.
    """
    if (run is None) == (model is None):
        raise UsageError("give exactly one of --run RUN or --model FILE")
    if model is not None:
        return _load_export(Path(model), batch_size, micro_batch, winograd)
    assert run is not None  # exactly one of run/model is given (checked above)
    run = Path(run)
    if not run.is_dir():
        raise UsageError(f"--run {run}: no such run folder")
    choice = selection.resolve(run, step)
    assert choice.step is not None  # resolve always picks a step (or raises)
    chosen = int(choice.step)
    config, params = _refiner_params_from_run(run, chosen)
    refiner = Refiner(
        config,
        params,
        {"run": str(run.absolute()), "step": chosen},
        batch_size,
        micro_batch,
        winograd,
    )
    refiner.selection_reason = choice.reason
    refiner.selection_warning = choice.warning
    return refiner


def export_refiner(run: Path, file: Path, step: int | str | None = None) -> Path:
    """Write the refiner of `run` (best checkpoint unless `step`, as load_refiner) to one
    self-contained file.

    FILE is checked before anything is read: not a folder, not below a regular file, not the
    run folder or anything in it, nor in the data the run was trained on (guard.py). It is
    written atomically: a full disk leaves no partial file and no temporary one.
    """
    from flax import nnx

    from ..io.atomic import atomic_write
    from .export_file import encode_export

    run, file = Path(run), Path(file)
    if not run.is_dir():
        raise UsageError(f"RUN {run}: no such run folder")
    _check_export_target(run, file)
    choice = selection.resolve(run, step)
    assert choice.step is not None  # resolve always picks a step (or raises)
    chosen = int(choice.step)
    config, params = _refiner_params_from_run(run, chosen)
    flat = {k: np.asarray(v) for k, v in flatten(nnx.to_pure_dict(params)).items()}
    header = {
        "format": EXPORT_FORMAT,
        "config": config.to_dict(),
        "source": {"run": str(run.absolute()), "step": chosen},
    }
    from ..training.watch import fitted_camera

    camera = fitted_camera(params)
    if camera is not None:  # the fitted camera in numbers, for whoever receives the file
        header["camera"] = camera
    try:
        atomic_write(file, encode_export(header, flat))
    except OSError as exc:
        raise RefinekitError(
            f"FILE {file}: cannot write the export ({exc.strerror or exc}); nothing was left "
            "in its place"
        ) from exc
    return file


def _check_export_target(run: Path, file: Path) -> None:
    from ..io import guard

    guard.check_output_file("FILE", file, create_parents=True)
    inputs: list[tuple[str, Path | None]] = [("RUN", run)]
    from ..training.runfolder import check_state_files

    check_state_files(run)  # a link or FIFO among the run's own files: an error naming it
    try:  # the data the run was trained on is an input too
        saved = read_own_json(run / "config.json")
        inputs += [("--synthetic of RUN", Path(saved["synthetic"]))]
        inputs += [("--real of RUN", Path(saved["real"]))]
    except (OSError, KeyError, TypeError):
        pass
    guard.check_not_input("FILE", file, inputs)


def _load_export(
    file: Path, batch_size: int, micro_batch: int | None, winograd: bool | None
) -> Refiner:
    from flax import nnx

    from ..nn.models import build_models
    from .export_file import read_export

    if not file.exists():
        raise UsageError(f"--model {file}: no such file")
    if file.is_dir():
        raise UsageError(f"--model {file}: is a folder, expected an exported refiner file")
    # Every check (header, config, shapes against the stored arrays, a size cap) comes before
    # a model is built: a hostile header cannot make this allocate.
    config, arrays, _, digest = read_export(file)
    assert config.channels is not None  # read_export refuses channels other than 1 or 3
    refiner, _ = build_models(config, int(config.channels), seed=0)
    _, params = nnx.split(refiner, nnx.Param)
    pure = nnx.to_pure_dict(params)
    nnx.replace_by_pure_dict(params, _unflatten(arrays, pure))
    return Refiner(
        config,
        params,
        {"export": str(file.absolute()), "sha256": digest},
        batch_size,
        micro_batch,
        winograd,
    )


def _unflatten(flat: dict[str, np.ndarray], like: dict, prefix: str = "") -> dict:
    return {
        key: _unflatten(flat, value, f"{prefix}{key}/")
        if isinstance(value, dict)
        else flat[f"{prefix}{key}"]
        for key, value in like.items()
    }
