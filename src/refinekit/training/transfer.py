"""`--init-from`: start a run from what another run learned (docs/training.md, "Start from
another run").

The source is a run folder, of which the best checkpoint is used (training/selection.py, the
one refine and export use), or an exported refiner (inference/export_file.py), which holds the
refiner only. Each part of a fresh run's state is taken from the source when it fits and stays
as initialised otherwise; one Note per part says which, and why:

- the refiner, when the kind, the output form and every parameter shape agree (channels, width,
  blocks, kernel). It and its weight average both start from the source's average, the weights
  its samples, scores and export used. A training-free kind is fitted to this run's real images
  whatever the source (there is nothing learned to carry over);
- the discriminator, when its convolutions' shapes agree (channels, layers). A projection
  discriminator's class embedding comes along only when both runs have the same class list;
  otherwise it starts at zero, as an unconditional discriminator;
- the frozen label classifier, when both runs have one over the same classes, with the same
  shapes; its own phase is then skipped.

Optimizer states, the history buffer and ADA's p always start afresh: they follow the source's
data and schedule. Whether a part fits is decided from the source's saved config (the shapes it
implies, nothing allocated) before any of its weights is read. What the run started from (path,
step, refiner kind, the fingerprints of the source's data, what was kept) is recorded in
`config.extra["init_from"]`, so in config.json and every checkpoint; a resumed run restores its
own checkpoint and reads nothing of the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import TrainConfig
from ..errors import CheckpointError, UsageError
from ..events import Note, OnEvent
from . import checkpoint, labels, selection
from .runfolder import write_json_atomic

FLAG = "--init-from"
REFINER, DISC, CLASSIFIER = "refiner", "discriminator", "label classifier"
WARN_RANDOM = (
    "; with --pretrain-refiner-steps 0 it starts the adversarial phase from random weights: "
    f"give --pretrain-refiner-steps (a fresh run's is {TrainConfig.pretrain_refiner_steps})"
)


@dataclass(frozen=True)
class Source:
    """What a run starts from: a run's checkpoint, or an export (`arrays`: its refiner)."""

    path: Path
    config: TrainConfig  # the checkpoint's or the export's settings
    step: int | None  # the checkpoint's step (an export: the step it was exported from)
    arrays: dict[str, np.ndarray] | None  # an export's parameters, by "/"-joined name
    record: dict  # what config.extra["init_from"] says of it

    @property
    def where(self) -> str:
        return f"{self.path} step {self.step}" if self.arrays is None else f"export {self.path}"


@dataclass(frozen=True)
class Part:
    name: str  # REFINER, DISC or CLASSIFIER
    status: str  # kept, reset, refitted or unused
    why: str

    @property
    def text(self) -> str:
        return f"{FLAG}: {self.name} {self.status} ({self.why})"


def check_source(path: str | Path) -> Path:
    """The path of a source, when it can be one: a run folder with checkpoints, or a regular
    file (an export, validated when read). A one-line UsageError naming the flag otherwise."""
    path = Path(path)
    if path.is_dir():
        if not checkpoint.checkpoint_dir(path).is_dir():
            raise UsageError(
                f"{FLAG} {path}: not a run folder (it has no checkpoints/); expected a run "
                "folder or a file written by refinekit export"
            )
        return path
    if path.exists() and not path.is_file():
        raise UsageError(f"{FLAG} {path}: not a regular file or a run folder")
    if not path.exists():
        raise UsageError(f"{FLAG} {path}: no such run folder or export file")
    return path


def check_before_start(config: TrainConfig) -> None:
    """Before a fresh run writes anything, its --init-from is opened (its settings read, an
    export validated), so a bad one leaves no run folder behind. A run folder with checkpoints
    resumes and reads nothing of its source, so it is not checked."""
    if config.init_from and not checkpoint.checkpoint_dir(Path(config.out)).is_dir():
        open_source(config.init_from)


def open_source(path_text: str) -> Source:
    """The source `path_text` names, its settings read and checked; no weights are read yet."""
    path = check_source(path_text)
    record: dict[str, Any] = {"path": str(path.absolute())}
    step: int | None
    if path.is_dir():
        try:
            choice = selection.resolve(path, None)
        except selection.NoHealthyCheckpoint:
            raise selection.NoHealthyCheckpoint(
                f"{FLAG} {path}: no healthy checkpoint to start from; export the one you want "
                f"(refinekit export {path} FILE --step N) and pass {FLAG} FILE"
            ) from None
        except CheckpointError as exc:  # no checkpoint in it yet
            raise UsageError(f"{FLAG} {exc}") from None
        assert choice.step is not None  # resolve picks a step or raises
        chosen = int(choice.step)
        settings = checkpoint.load_config(path, chosen)
        config = TrainConfig.from_dict(settings, source=f"{FLAG} {path} step {chosen}", saved=True)
        step, arrays = chosen, None
        record.update(kind="run", step=chosen, checkpoint=choice.reason)
    else:
        from ..inference.export_file import read_export

        try:
            config, arrays, header, digest = read_export(path)
        except CheckpointError as exc:  # the flag points at something that is not an export
            raise UsageError(str(exc).replace("--model", FLAG, 1)) from None
        origin = header.get("source")
        origin = origin if isinstance(origin, dict) else {}
        exported = origin.get("step")
        step = exported if isinstance(exported, int) else None  # the run it was exported from
        record.update(kind="export", sha256=digest, run=origin.get("run"), step=step)
    data = config.extra.get("data", {}) if isinstance(config.extra.get("data"), dict) else {}
    record["refiner"] = config.refiner
    record["data"] = {k: (data.get(k) or {}).get("fingerprint") for k in ("synthetic", "real")}
    return Source(path, config, step, arrays, record)


def start_from(
    config: TrainConfig,
    fns: Any,
    state: Any,
    emit: OnEvent,
    resume_step: int | None,
    primary: bool = True,
) -> tuple[Any, bool]:
    """The state a run starts from, and whether it holds a trained label classifier already
    (its own phase is then skipped). Without --init-from, or on resume, `state` is returned as
    it is; a resumed run only records its source again (from its own checkpoint's config).

    `fns`: the run's StepFunctions; `state`: its fresh TrainState (fns.init_state())."""
    if not config.init_from:
        return state, False
    run = Path(config.out)
    if resume_step is not None:
        extra = checkpoint.load_config(run, resume_step).get("extra", {})
        _record(config, run, extra.get("init_from", {}), primary)
        return state, False
    import jax

    source = open_source(config.init_from)
    state, parts = _carry(source, config, fns, state)
    for part in parts:
        warn = part.name == REFINER and part.status == "reset" and _starts_random(config)
        text = part.text + (WARN_RANDOM if warn else "")
        details = {"part": part.name, "status": part.status}
        emit(Note("train", "warning" if warn else "info", text, details=details))
    _record(config, run, {**source.record, "parts": {p.name: p.status for p in parts}}, primary)
    kept = any(p.name == CLASSIFIER and p.status == "kept" for p in parts)
    return jax.device_put(state, fns.replicated), kept


def _starts_random(config: TrainConfig) -> bool:
    """A reset ResNet without pretraining starts the adversarial phase far from the identity."""
    direct = "resnet" in config.refiner and config.refiner_output == "direct"
    return direct and config.pretrain_refiner_steps == 0


def _record(config: TrainConfig, run: Path, record: dict, primary: bool) -> None:
    config.extra["init_from"] = record  # saved with every checkpoint's config from now on
    if primary:
        write_json_atomic(run / "config.json", config.to_dict())


def _carry(source: Source, config: TrainConfig, fns: Any, state: Any) -> tuple[Any, list[Part]]:
    """`state` with each part the source has that fits this run; what was done with each."""
    from ..refiners import TRAINING_FREE

    src = source.config
    assert src.channels is not None and config.channels is not None
    channels = (int(src.channels), int(config.channels))
    src_refiner, src_disc = _abstract_models(src, channels[0])
    parts = []
    why = _refiner_mismatch(src, config, channels, src_refiner, state.refiner)
    if config.refiner in TRAINING_FREE:
        parts.append(Part(REFINER, "refitted", f"{config.refiner} is fitted to this run's data"))
    elif why:
        parts.append(Part(REFINER, "reset", why))
    else:
        params = _read_refiner(source, state.refiner)
        state = state.replace(refiner=params, ema=_copy(params))
        parts.append(Part(REFINER, "kept", f"from {source.where}, its weight average"))
    if config.refiner in TRAINING_FREE:
        parts.append(Part(DISC, "unused", "a training-free kind trains none"))
    else:
        disc, part = _carry_disc(source, config, fns, channels, src_disc, state.disc)
        state = state.replace(disc=disc)
        parts.append(part)
    if fns.label_terms.classifier is not None:
        classifier, part = _carry_classifier(source, config, fns, channels, state.extras)
        state = state.replace(extras={**state.extras, "classifier": classifier})
        parts.append(part)
    return state, parts


def _refiner_mismatch(src, config, channels, src_params, params) -> str | None:
    """Why the source's refiner cannot start this run's, or None when it can."""
    if src.refiner != config.refiner:
        return f"the source's refiner is {src.refiner}, this run's {config.refiner}"
    if "resnet" in config.refiner and src.refiner_output != config.refiner_output:
        return f"the source's output is {src.refiner_output}, this run's {config.refiner_output}"
    if channels[0] != channels[1]:
        return _channels(channels)
    if _signature(src_params) != _signature(params):
        shape = ("refiner_width", "refiner_blocks", "refiner_kernel")
        changed = [
            f"{name[8:]} {getattr(src, name)} -> {getattr(config, name)}"
            for name in shape
            if getattr(src, name) != getattr(config, name)
        ]
        return f"its shape differs: {', '.join(changed) or 'other parameter shapes'}"
    return None


def _carry_disc(source, config, fns, channels, src_params, params) -> tuple[Any, Part]:
    from ..refiners import TRAINING_FREE

    src = source.config
    why = None
    if source.arrays is not None:
        why = "an export holds the refiner only"
    elif src.refiner in TRAINING_FREE:
        why = f"the source is training-free ({src.refiner}): its discriminator never trained"
    elif channels[0] != channels[1]:
        why = _channels(channels)
    elif _signature(src_params["convs"]) != _signature(params["convs"]):
        why = "the source's discriminator layers differ (--preset, disc_layers)"
    if why:
        return params, Part(DISC, "reset", why)
    saved = checkpoint.restore_field(source.path, source.step, ("disc",), _target(src_params, fns))
    pure, taken = _pure(params), _pure(saved)
    pure["convs"] = taken["convs"]
    src_classes, classes = _classes(src, conditional=True), _classes(config, conditional=True)
    what = f"from {source.where}"
    if classes and src_classes == classes:
        pure["embed"] = taken["embed"]
        what += ", with its class embedding"
    elif classes:
        reason = "the source's was unconditional" if not src_classes else "the classes differ"
        what += f"; the class embedding starts at zero ({reason})"
    elif src_classes:
        what += ", without its class embedding (this run is unconditional)"
    return _replace(params, pure), Part(DISC, "kept", what)


def _carry_classifier(source, config, fns, channels, extras) -> tuple[Any, Part]:
    from flax import nnx

    from .labels.classifier import LabelClassifier

    params = extras["classifier"]
    src = source.config
    src_classes, classes = _classes(src), _classes(config)
    src_abstract = None
    why = None
    if source.arrays is not None:
        why = "an export holds the refiner only"
    elif not src_classes:
        why = "the source trained none (no classes, or --lambda-label 0)"
    elif src_classes != classes:
        why = f"the classes differ: {_listed(src_classes)} -> {_listed(classes)}"
    elif channels[0] != channels[1]:
        why = _channels(channels)
    else:
        assert src.size is not None
        model = nnx.eval_shape(
            lambda: LabelClassifier(channels[0], len(src_classes), src.size, rngs=nnx.Rngs(0))
        )
        src_abstract = nnx.split(model, nnx.Param)[1]
        if _signature(src_abstract) != _signature(params):
            why = f"its input size differs: {src.size} -> {config.size}"
    if why:
        return params, Part(CLASSIFIER, "reset", f"trained in its own phase; {why}")
    target = {"classifier": _target(src_abstract, fns)}
    saved = checkpoint.restore_field(source.path, source.step, ("extras",), target)
    what = f"from {source.where}; its own phase is skipped"
    return _replace(params, _pure(saved["classifier"])), Part(CLASSIFIER, "kept", what)


def _classes(config: TrainConfig, conditional: bool = False) -> list[str]:
    """The classes of `config`'s label classifier (or, `conditional`, of its projection
    discriminator); [] when it has none."""
    plan = labels.plan(config)
    on = plan.conditional if conditional else plan.label_loss
    return list(config.extra.get("classes", [])) if on else []


def _listed(classes: list[str]) -> str:
    return ", ".join(classes[:4]) + (", ..." if len(classes) > 4 else "")


def _channels(channels: tuple[int, int]) -> str:
    plural = "s" if channels[0] > 1 else ""
    return f"the source has {channels[0]} channel{plural}, this run {channels[1]}"


def _abstract_models(config: TrainConfig, channels: int) -> tuple[Any, Any]:
    """The parameter shapes of the refiner and discriminator `config` implies (no allocation)."""
    from flax import nnx

    from ..nn.models import build_models

    classes = labels.plan(config).n_classes if labels.plan(config).conditional else 0
    refiner, disc = nnx.eval_shape(lambda: build_models(config, channels, 0, classes=classes))
    return nnx.split(refiner, nnx.Param)[1], nnx.split(disc, nnx.Param)[1]


def _signature(tree: Any) -> list[tuple[str, tuple[int, ...], str]]:
    import jax

    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p), tuple(x.shape), str(x.dtype)) for p, x in flat]


def _target(abstract: Any, fns: Any) -> Any:
    """Shapes to restore into, placed as the run's state is (replicated over the mesh)."""
    import jax

    def place(x):
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=fns.replicated)

    return jax.tree.map(place, abstract)


def _read_refiner(source: Source, like: Any) -> Any:
    """The source's refiner weights (its moving average) in the structure of `like`."""
    if source.arrays is None:
        assert source.step is not None  # a run's source is a checkpoint
        return checkpoint.restore_field(source.path, source.step, ("ema", "refiner"), like)
    arrays = source.arrays

    def fill(tree: dict, prefix: str = "") -> dict:
        return {
            key: fill(value, f"{prefix}{key}/")
            if isinstance(value, dict)
            else np.asarray(arrays[f"{prefix}{key}"])
            for key, value in tree.items()
        }

    return _replace(like, fill(_pure(like)))


def _pure(tree: Any) -> dict:
    from flax import nnx

    return nnx.to_pure_dict(tree)


def _replace(like: Any, pure: dict) -> Any:
    """A copy of the nnx.State `like` holding the arrays of the pure dict `pure`."""
    from flax import nnx

    out = _copy(like)
    nnx.replace_by_pure_dict(out, pure)
    return out


def _copy(tree: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jax.tree.map(jnp.copy, tree)
