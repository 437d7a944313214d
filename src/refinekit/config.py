"""Training configuration: frozen dataclasses, validated on creation, JSON/TOML round-trip.

Every constant of the algorithm is a field here, and so a CLI flag. `config.json` in the run
folder and in each checkpoint holds all of it, so any checkpoint restores with no other input.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .limits import check_frozen_layers, check_limits, parse_layers
from .presets import PRESETS, REFINERS

# Discriminator layer specs: ("conv", kernel, stride, features) or ("pool", kernel, stride).
# The last conv has 2 features: one real/refined logit pair per patch.
DiscLayers = tuple[tuple, ...]

PSI_CHOICES = ("identity", "mean-channels", "downsample")
OPTIMIZERS = ("adam", "sgd")
PRECISIONS = ("float32", "bf16")
AUGMENTS = ("auto", "none", "diffaugment", "ada")
# --augment auto: ADA below this many real images (docs/few-real-images.md), none from it on.
AUTO_ADA_BELOW = 100
CONTENTS = ("l1", "lowpass", "nce", "structure")
LABEL_TARGETS = ("class", "prediction")
CLASS_CONDITIONAL = ("auto", "on", "off")
GAN_LOSSES = ("bce", "lsgan", "hinge")
ON_COLLAPSE = ("warn", "stop")
# Checkpoints scored by a small CNN trained on refined images and tested on held-out labelled
# real images: "auto" when the real set has the synthetic class folders (docs/training.md).
DOWNSTREAM = ("auto", "off")
REFINER_OUTPUTS = ("residual", "direct")
CHOICES = {
    "refiner": REFINERS,
    "refiner_output": REFINER_OUTPUTS,
    "content": CONTENTS,
    "label_target": LABEL_TARGETS,
    "class_conditional": CLASS_CONDITIONAL,
    "psi": PSI_CHOICES,
    "optimizer": OPTIMIZERS,
    "precision": PRECISIONS,
    "augment": AUGMENTS,
    "gan_loss": GAN_LOSSES,
    "downstream": DOWNSTREAM,
}
# What a setting was before it existed: a saved run or export without the key was trained so.
LEGACY: dict[str, Any] = {
    "refiner": "resnet",
    "refiner_output": "direct",
    "lr_pretrain_refiner": None,
    "lambda_label_pretrain": None,
    "label_target": "class",
    "label_warmup": 0,
    "downstream": "off",
    "lambda_stats": 0.0,
}

# Fields that define what a checkpoint holds or how its numbers evolve; changing one of
# them on resume would silently train a different model, so it is an error.
RUN_DEFINING = (
    "refiner",
    "preset",
    "width",
    "blocks",
    "kernel",
    "refiner_output",
    "disc_layers",
    "channels",
    "size",
    "batch_size",
    "buffer_size",
    "seed",
    "lambda_reg",
    "lambda_stats",
    "psi",
    "kg",
    "kd",
    "pretrain_refiner_steps",
    "pretrain_disc_steps",
    "optimizer",
    "lr_refiner",
    "lr_disc",
    "lr_pretrain_refiner",
    "precision",
    "real_crop",
    "augment",
    "augment_policy",
    "ada_target",
    "ada_interval",
    "ada_speed",
    # label-aware training (docs/labels.md)
    "lambda_label",
    "lambda_label_pretrain",
    "label_target",
    "label_warmup",
    "class_conditional",
    "content",
    "lambda_nce",
    "lambda_structure",
    "classifier_steps",
    # stability and validation (docs/training.md)
    "gan_loss",
    "r1_gamma",
    "r1_every",
    "ema_decay",
    "grad_clip",
    "val_fraction",
    "init_from",
    "freeze_refiner_steps",
    "freeze_disc_layers",
)


@dataclass(frozen=True)
class TrainConfig:
    """Everything `refinekit train` needs. Paths are strings so the config is plain JSON."""

    synthetic: str = ""
    real: str = ""
    out: str = ""
    # model
    refiner: str = "auto"  # a kind of presets.REFINERS; auto fits candidates, keeps the best
    preset: str = "local"
    width: int | None = None  # refiner feature maps (preset's if None)
    blocks: int | None = None  # refiner ResNet blocks
    kernel: int | None = None  # refiner kernel size
    refiner_output: str = "direct"  # the paper's tanh(f(x)); residual: tanh(atanh(x) + f(x))
    disc_layers: DiscLayers | None = None
    # data
    size: tuple[int, int] | None = None  # (H, W); None: the synthetic images' common size
    channels: int | None = None  # None: follow the synthetic set
    real_crop: bool = False
    strict: bool = False
    # algorithm
    steps: int = 2000  # adversarial steps, after pretraining
    batch_size: int = 32
    kg: int = 2
    kd: int = 1
    lambda_reg: float = 0.5
    # weight of matching per-image statistics to the real set's (training/statistics.py)
    lambda_stats: float = 0.0
    psi: str = "identity"
    pretrain_refiner_steps: int = 1000
    pretrain_disc_steps: int = 200
    buffer_size: int | None = None  # None: 32 x batch_size
    optimizer: str = "adam"
    lr_refiner: float = 5e-5  # 4x below lr_disc: no drift when D wins pretraining
    lr_disc: float = 2e-4
    # refiner pretraining only (None: --lr-refiner); fast so pretraining ends near the identity
    lr_pretrain_refiner: float | None = None
    seed: int = 0
    # start from another run's best checkpoint or an export (training/transfer.py); "": fresh
    init_from: str = ""
    freeze_refiner_steps: int = 0  # the refiner is not updated in the first N adversarial steps
    freeze_disc_layers: int = 0  # the discriminator's first K convolutions are never updated
    # stability (docs/training.md)
    gan_loss: str = "bce"
    r1_gamma: float = 0.0  # R1 penalty weight on real images (0: off; 10 stalled D)
    r1_every: int = 4  # lazy R1: every k-th discriminator step, weighted by k
    ema_decay: float = 0.999  # moving average of the refiner's weights (0: the raw weights)
    grad_clip: float = 0.0  # global-norm gradient clip of both networks (0: off)
    # health and validation (docs/training.md)
    on_collapse: str = "warn"
    val_fraction: float = 0.1  # of the real set held out for scoring checkpoints (0: none)
    downstream: str = "auto"  # DOWNSTREAM
    # discriminator augmentation (few real images)
    augment: str = "auto"  # ada with fewer than AUTO_ADA_BELOW real images, else none
    augment_policy: str = "color,translation,cutout"
    ada_target: float = 0.6
    ada_interval: int = 4
    ada_speed: float = 20_000.0  # images for p to move 0 -> 1 (ADA uses 500k on large sets)
    # labels and content (docs/labels.md)
    lambda_label: float = 5.0  # weight of the label loss when class subfolders exist
    # ... during refiner pretraining (None: lambda_label, as runs saved before it existed)
    lambda_label_pretrain: float | None = None
    # class: CE(C(R(x)), y); prediction: KL(C(x) || C(R(x))), C's own reading of x kept
    label_target: str = "prediction"
    # pretraining steps over which the label weight ramps up from 0 (None: half of them on RGB)
    label_warmup: int | None = None
    class_conditional: str = "auto"  # projection discriminator when real has the same classes
    content: str = "l1"  # what self-regularisation compares: l1, lowpass, nce, structure
    lambda_nce: float = 1.0  # weight of PatchNCE when content is nce
    lambda_structure: float = 1.0  # weight of the orientation loss when content is structure
    classifier_steps: int = 600  # steps of the frozen label classifier's own phase
    # execution
    steps_per_call: int = 1
    precision: str = "float32"
    # run folder
    checkpoint_every: int = 500
    keep: int = 3
    sample_every: int = 250
    log_every: int = 50
    extra: dict = field(default_factory=dict)  # provenance: data counts, fingerprints, versions

    def __post_init__(self) -> None:
        check_limits(self)
        if self.preset not in PRESETS:
            raise ConfigError(
                f"--preset {self.preset!r}: expected one of {', '.join(PRESETS)}", setting="preset"
            )
        for name in ("steps", "pretrain_refiner_steps", "pretrain_disc_steps"):
            _check(name, getattr(self, name) >= 0, "a count >= 0")
        for name in (
            "batch_size",
            "kg",
            "kd",
            "checkpoint_every",
            "keep",
            "sample_every",
            "log_every",
            "steps_per_call",
            "ada_interval",
            "r1_every",
        ):
            _check(name, getattr(self, name) >= 1, "an integer >= 1")
        _check(
            "batch_size",
            self.batch_size % 2 == 0,
            "an even number (half the discriminator batch comes from the history buffer)",
        )
        for name in ("width", "blocks", "kernel"):
            value = getattr(self, name)
            _check(name, value is None or value >= 1, "an integer >= 1")
        _check("kernel", self.kernel is None or self.kernel % 2 == 1, "an odd kernel size")
        _check("lambda_reg", self.lambda_reg >= 0, "a number >= 0")
        _check("lambda_stats", self.lambda_stats >= 0, "a number >= 0 (0 turns it off)")
        _check("lambda_label", self.lambda_label >= 0, "a number >= 0 (0 turns the label loss off)")
        _check("lambda_nce", self.lambda_nce >= 0, "a number >= 0")
        _check("lambda_structure", self.lambda_structure >= 0, "a number >= 0")
        _check("classifier_steps", self.classifier_steps >= 1, "an integer >= 1")
        _check(
            "content",
            self.content != "nce" or self.refiner != "acquisition",
            "l1, lowpass or structure with --refiner acquisition (PatchNCE compares ResNet features)",
        )
        for name, allowed in CHOICES.items():
            _check(name, getattr(self, name) in allowed, f"one of {', '.join(allowed)}")
        _check("lr_refiner", self.lr_refiner > 0, "a learning rate > 0")
        _check("lr_disc", self.lr_disc > 0, "a learning rate > 0")
        _check("channels", self.channels in (None, 1, 3), "1 (gray) or 3 (RGB)")
        _check("ada_target", 0 < self.ada_target < 1, "a number between 0 and 1")
        _check("ada_speed", self.ada_speed > 0, "a number > 0")
        _check("on_collapse", self.on_collapse in ON_COLLAPSE, "warn or stop")
        _check("r1_gamma", self.r1_gamma >= 0, "a number >= 0")
        _check("ema_decay", 0 <= self.ema_decay < 1, "a number in [0, 1)")
        _check("grad_clip", self.grad_clip >= 0, "a number >= 0 (0: no clipping)")
        _check("val_fraction", 0 <= self.val_fraction < 0.5, "a fraction in [0, 0.5)")
        if self.size is not None:
            integers = all(isinstance(s, int) and not isinstance(s, bool) for s in self.size)
            _check(
                "size",
                len(self.size) == 2 and integers and min(self.size) >= 4,
                "two integers H W, each >= 4",
            )
            object.__setattr__(self, "size", tuple(int(s) for s in self.size))
        if self.buffer_size is not None:
            half = self.batch_size // 2
            _check(
                "buffer_size",
                self.buffer_size >= half and self.buffer_size % half == 0,
                f"a multiple of half the batch size ({half}), so appending fills it exactly",
            )
        if self.disc_layers is not None:
            object.__setattr__(self, "disc_layers", parse_layers(self.disc_layers))
        check_frozen_layers(self)

    # Resolved model shape (preset values unless overridden).
    @property
    def refiner_width(self) -> int:
        return self.width or PRESETS[self.preset]["width"]

    @property
    def refiner_blocks(self) -> int:
        return self.blocks if self.blocks is not None else PRESETS[self.preset]["blocks"]

    @property
    def refiner_kernel(self) -> int:
        return self.kernel or PRESETS[self.preset]["kernel"]

    @property
    def discriminator_layers(self) -> DiscLayers:
        return self.disc_layers or PRESETS[self.preset]["disc_layers"]

    @property
    def history_size(self) -> int:
        return self.buffer_size or 32 * self.batch_size

    @property
    def total_steps(self) -> int:
        return self.pretrain_refiner_steps + self.pretrain_disc_steps + self.steps

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], source: str = "config", saved: bool = False
    ) -> TrainConfig:
        """A config from settings; `saved`: they come from a run or an export, so a setting
        they lack takes its LEGACY value (what it was before it existed), not today's default."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(known)}"
            )
        values = {k.replace("-", "_"): v for k, v in data.items()}
        if saved:
            values = {**LEGACY, **values}
        for key, value in values.items():
            _check_type(key, value, known[key].type, source)
        if values.get("size") is not None:
            values["size"] = tuple(values["size"])
        return cls(**values)


def load_config_file(path: Path) -> dict[str, Any]:
    """The keys of a JSON or TOML config file (same names as TrainConfig fields / flags)."""
    from .io.regular import NotRegularFile, read_text

    path = Path(path)
    try:
        text = read_text(path)  # a regular file only: a FIFO or device never hangs the command
    except NotRegularFile as exc:
        raise ConfigError(f"--config {exc}") from None
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"--config {path}: not a text file ({exc.reason} at byte {exc.start})"
        ) from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"--config {path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'JSON'} ({exc})"
        ) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a table/object of settings")
    return {k.replace("-", "_"): v for k, v in data.items()}


def incompatible_fields(saved: TrainConfig, new: TrainConfig) -> list[str]:
    """Run-defining fields whose values differ, as 'name: saved -> new'."""
    out = []
    for name in RUN_DEFINING:
        a, b = getattr(saved, name), getattr(new, name)
        if name == "buffer_size":
            a, b = saved.history_size, new.history_size
        if a != b:
            out.append(f"{name}: {a!r} -> {b!r}")
    return out


def _check(name: str, ok: bool, expected: str) -> None:
    if not ok:
        raise ConfigError(f"--{name.replace('_', '-')}: expected {expected}", setting=name)


_TYPES: dict[str, type | tuple[type, ...]] = {
    "int": int,
    "float": (int, float),
    "str": str,
    "bool": bool,
    "dict": dict,
}


def _check_type(key: str, value: Any, annotation: object, source: str) -> None:
    if value is None:
        if "None" not in str(annotation):
            raise ConfigError(f"{source}: {key} must not be null")
        return
    base = str(annotation).split(" |")[0].split("[")[0]
    expected = _TYPES.get(base)
    if base == "tuple" or base == "DiscLayers":
        ok = isinstance(value, list | tuple)
    elif expected is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif expected is not None:
        ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool))
    else:
        ok = True
    if not ok:
        raise ConfigError(f"{source}: {key} = {value!r} has the wrong type (expected {annotation})")
