"""The exported-refiner file: written atomically, read only after its header is validated.

An export is one .npz holding `__header__` (JSON: format, config, source) and the refiner's
parameters, one array per "/"-joined name. A hostile or damaged file must cost nothing: the
file is read as a regular file under a size cap, the header must be a JSON object whose
`config` is an object of valid settings, the parameter shapes that config implies are derived
without allocating anything (`nnx.eval_shape`), capped, and compared with the shapes stored in
each array's .npy header; only then is any array read, and only then is a model built.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .. import limits
from ..config import TrainConfig
from ..errors import CheckpointError, ConfigError, RefinekitError
from ..io.regular import EXPORT_BYTES_CAP, NotRegularFile, json_kind, read_regular

EXPORT_FORMAT = "refinekit-refiner-v1"
HEADER = "__header__"
HEADER_BYTES_CAP = 1 << 20
# No refiner worth sharing has more parameters (the paper's hand preset has ~0.8 M); a header
# asking for more is refused before anything is allocated. The one limit train, export and
# refine share (limits.py).
MAX_PARAMETERS = limits.MAX_PARAMETERS


def encode_export(header: dict, flat: dict[str, np.ndarray]) -> bytes:
    """The bytes of an export file (an uncompressed .npz)."""
    buffer = io.BytesIO()
    payload = np.frombuffer(json.dumps(header).encode(), np.uint8)
    arrays: dict[str, Any] = {HEADER: payload, **flat}
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def expected_shapes(config: TrainConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every refiner parameter `config` implies, with nothing allocated.

    Raises CheckpointError when the model would exceed MAX_PARAMETERS.
    """
    from flax import nnx

    from ..nn.models import Refiner

    width, blocks, kernel = config.refiner_width, config.refiner_blocks, config.refiner_kernel
    channels = int(config.channels or 1)
    # Closed form first, so a huge width is refused before even the abstract trace.
    count = limits.refiner_parameters(channels, width, blocks, kernel)
    if count > MAX_PARAMETERS:
        raise CheckpointError(
            f"its config describes a refiner of {count} parameters (width {width}, blocks "
            f"{blocks}, kernel {kernel}), more than the limit of {MAX_PARAMETERS}"
        )
    abstract: nnx.Module
    if config.refiner == "resnet":
        abstract = nnx.eval_shape(
            lambda: Refiner(channels, width, blocks, kernel, rngs=nnx.Rngs(0))
        )
    else:
        from ..refiners import build_refiner

        abstract = nnx.eval_shape(lambda: build_refiner(config, channels, rngs=nnx.Rngs(0)))
    _, params = nnx.split(abstract, nnx.Param)
    return {name: tuple(value.shape) for name, value in flatten(nnx.to_pure_dict(params)).items()}


def read_export(file: Path) -> tuple[TrainConfig, dict[str, np.ndarray], dict, str]:
    """Validate and read an export: (config, name -> array, header, sha256 of the file).

    Raises CheckpointError (naming the file and what is wrong) for anything that is not a
    valid export, before allocating more than the file itself.
    """
    file = Path(file)
    flag = f"--model {file}"
    try:
        data, _ = read_regular(file, EXPORT_BYTES_CAP)
    except NotRegularFile as exc:
        raise CheckpointError(f"--model {exc}") from None
    except OSError as exc:
        raise CheckpointError(f"{flag}: cannot read it ({exc.strerror or exc})") from exc
    digest = hashlib.sha256(data).hexdigest()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in archive.infolist()}
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"{flag}: not a refinekit refiner export (not a .npz file)") from exc
    with archive:
        header = _header(archive, members, flag)
        config = _config(header, flag)
        try:
            expected = expected_shapes(config)
        except CheckpointError as exc:
            raise CheckpointError(f"{flag}: {exc}") from None
        stored = {
            name[: -len(".npy")]: info for name, info in members.items() if name.endswith(".npy")
        }
        stored.pop(HEADER, None)
        missing = sorted(set(expected) - set(stored))
        extra = sorted(set(stored) - set(expected))
        if missing or extra:
            what = f"missing {missing[0]}" if missing else f"unexpected array {extra[0]}"
            raise CheckpointError(
                f"{flag}: its parameters do not match its config ({what}; damaged file?)"
            )
        arrays = {}
        for name, shape in expected.items():
            arrays[name] = _array(archive, stored[name], name, shape, flag)
    return config, arrays, header, digest


def _header(archive: zipfile.ZipFile, members: dict, flag: str) -> dict:
    info = members.get(HEADER + ".npy")
    if info is None:
        raise CheckpointError(f"{flag}: not a refinekit refiner export (no {HEADER})")
    if info.file_size > HEADER_BYTES_CAP:
        raise CheckpointError(f"{flag}: its header is {info.file_size} bytes, far too large")
    try:
        with archive.open(info) as member:
            raw = np.lib.format.read_array(member, allow_pickle=False)
        header = json.loads(np.asarray(raw).tobytes().decode("utf-8"))
    except (ValueError, UnicodeDecodeError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{flag}: not a refinekit refiner export (unreadable header: {type(exc).__name__})"
        ) from exc
    if not isinstance(header, dict):
        raise CheckpointError(
            f"{flag}: its header is a JSON {type(header).__name__}, expected an object"
        )
    if header.get("format") != EXPORT_FORMAT:
        raise CheckpointError(
            f"{flag}: unknown format {header.get('format')!r} (expected {EXPORT_FORMAT})"
        )
    return header


def _config(header: dict, flag: str) -> TrainConfig:
    settings = header.get("config")
    if not isinstance(settings, dict):
        if settings is None:
            raise CheckpointError(
                f"{flag}: its header has no config, expected an object of settings"
            )
        raise CheckpointError(
            f"{flag}: its header's config is a {json_kind(settings)}, expected an object of settings"
        )
    try:
        config = TrainConfig.from_dict(settings, source=f"{flag} config", saved=True)
    except ConfigError as exc:
        message = str(exc)
        raise CheckpointError(
            message if flag in message else f"{flag}: its config: {message}"
        ) from None
    except (TypeError, ValueError) as exc:  # a value of the right type that is still unusable
        raise CheckpointError(f"{flag}: its config is invalid ({exc})") from None
    if config.channels not in (1, 3):
        raise CheckpointError(f"{flag}: its config has no channels (expected 1 or 3)")
    if config.size is None:
        raise CheckpointError(f"{flag}: its config has no size (expected [height, width])")
    return config


def _array(archive, info, name: str, shape: tuple[int, ...], flag: str) -> np.ndarray:
    """One stored parameter, after its .npy header matched `shape` and float32."""
    try:
        with archive.open(info) as member:
            version = np.lib.format.read_magic(member)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            stored_shape, fortran, dtype = read_header(member)
            if tuple(stored_shape) != shape or dtype != np.float32:
                raise CheckpointError(
                    f"{flag}: its parameters do not match its config (parameter {name} is "
                    f"{dtype} {tuple(stored_shape)}, the config implies float32 {shape}; "
                    "damaged file?)"
                )
            count = math.prod(shape)
            raw = member.read(count * 4 + 1)
    except RefinekitError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"{flag}: parameter {name} is unreadable ({type(exc).__name__}; damaged file?)"
        ) from exc
    if len(raw) != count * 4:
        raise CheckpointError(f"{flag}: parameter {name} is truncated or too long (damaged file?)")
    array = np.frombuffer(raw, np.float32)
    array = array.reshape(shape[::-1]).T if fortran else array.reshape(shape)
    if not np.isfinite(array).all():
        raise CheckpointError(f"{flag}: parameter {name} holds NaN or infinite values")
    return np.array(array)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "/"))
        else:
            out[name] = value
    return out
