"""The refiner's label and content terms beyond the L1 self-regularisation, as steps.py calls them.

`LabelTerms(config, image_shape)` resolves the plan (labels.plan), owns the frozen classifier's
functions, fills `TrainState.extras`, and computes

    lambda_label * KL(C(aug(x)) || C(aug(R(x))))   when the synthetic set has classes (label
                                                   loss; --label-target class: CE(..., y))
    lambda_nce * PatchNCE(R features of R(x), of x)   when --content nce
    lambda_structure * |o(R(x)) - o(x)|               when --content structure (content.py)

for one refiner update. `prepare` runs the classifier phase before step 0 of a fresh run.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ...config import TrainConfig
from ...events import Note, OnEvent, Progress, Stage
from .. import content, labels
from . import classifier as label_classifier

# C is trained again, RETRY_FACTOR x longer, when it puts fewer than RETRY_BELOW of the
# synthetic images in their class (colour-randomised sets need ~4x the default steps: 35% at
# 600 steps, 94% at 2,400, docs/labels.md). Below MIN_ACCURACY its gradient points nowhere
# useful: the label loss would repaint images to please a classifier that is mostly wrong.
RETRY_BELOW = 0.97
RETRY_FACTOR = 4
MIN_ACCURACY = 0.9


class LabelTerms:
    def __init__(self, config: TrainConfig, image_shape: tuple[int, int, int]):
        self.config = config
        self.plan = labels.plan(config)
        h, w, c = image_shape
        self.classifier = (
            label_classifier.ClassifierFunctions(
                c, self.plan.n_classes, (h, w), config.seed, config.classifier_steps
            )
            if self.plan.label_loss
            else None
        )
        # On RGB the full label weight from step 0 repaints colours before L1 has taught the
        # refiner to copy its input (docs/labels.md); gray sets did better without the ramp.
        auto = config.pretrain_refiner_steps // 2 if c == 3 else 0
        self.warmup: int = auto if config.label_warmup is None else config.label_warmup
        # 0 when prepare() finds C too weak to trust; read when the steps are traced, which
        # happens after prepare (loop.py), so a weak classifier costs nothing per step.
        self.label_weight = 1.0

    @property
    def disc_classes(self) -> int:
        """Classes of the projection discriminator (0: unconditional)."""
        return self.plan.n_classes if self.plan.conditional else 0

    def init_extras(self) -> dict[str, Any]:
        """The extras of a fresh state: C's untrained parameters when the label loss is on."""
        if self.classifier is None:
            return {}
        return {"classifier": jax.tree.map(jnp.copy, self.classifier.init_params)}

    def metric_names(self) -> list[str]:
        names = []
        if self.classifier is not None:
            names += ["label_loss", "label_accuracy"]
        if self.config.content in ("nce", "structure"):
            names.append(self.config.content)
        return names

    def refiner_extra_loss(
        self,
        extras: dict[str, Any],
        refiner: Any,
        refined: jax.Array,
        synthetic: jax.Array,
        class_ids: jax.Array,
        key: jax.Array,
        adversarial: bool = True,
        step: jax.Array | int = 0,
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """(weighted extra loss, metrics) for one refiner update.

        refiner: the refiner module (merged, with the parameters being differentiated);
        refined = refiner(synthetic), (B, H, W, C); class_ids: int (B,), -1 = no class.
        """
        total = jnp.zeros(())
        metrics: dict[str, jax.Array] = {}
        if self.classifier is not None:
            ce, acc = self.classifier.label_loss(
                extras["classifier"],
                refined,
                class_ids,
                jax.random.fold_in(key, 11),
                synthetic if self.config.label_target == "prediction" else None,
            )
            weight: jax.Array | float = self.config.lambda_label
            if not adversarial and self.config.lambda_label_pretrain is not None:
                weight = self.config.lambda_label_pretrain
            if not adversarial and self.warmup > 0:
                weight = weight * jnp.clip(step / self.warmup, 0.0, 1.0)
            total = total + weight * self.label_weight * ce
            metrics["label_loss"] = ce
            metrics["label_accuracy"] = acc
        if self.config.content == "nce":
            _, input_maps = refiner.forward_with_features(synthetic)
            _, output_maps = refiner.forward_with_features(refined)
            nce = content.multi_layer_nce(output_maps, input_maps, jax.random.fold_in(key, 13))
            total = total + self.config.lambda_nce * nce
            metrics["nce"] = nce
        if self.config.content == "structure":
            structure = content.structure_loss(refined, synthetic)
            total = total + self.config.lambda_structure * structure
            metrics["structure"] = structure
        return total, metrics


def prepare(
    terms: LabelTerms,
    state: Any,
    synthetic: Any,
    synthetic_ids: np.ndarray,
    resumed: bool,
    emit: OnEvent,
) -> Any:
    """The classifier phase: on a fresh run with the label loss on, train C on the synthetic
    images (device array `synthetic`, uint) and their class ids, and freeze it into
    state.extras["classifier"]. A resumed state already holds it (from the checkpoint); its
    accuracy is measured again, so the label loss is on or off exactly as in the first run."""
    fns = terms.classifier
    if fns is None:
        return state
    images = np.asarray(synthetic)
    if resumed:
        params = state.extras["classifier"]
        accuracy = label_classifier.accuracy(fns, params, images, synthetic_ids)
        _gate(terms, accuracy, emit)
        return state
    steps = terms.config.classifier_steps
    params, accuracy = _train(terms, fns, synthetic, synthetic_ids, steps, emit)
    if accuracy < RETRY_BELOW:
        emit(
            Note(
                "train",
                "info",
                f"label classifier: {accuracy:.1%} of the synthetic images in their class after "
                f"{steps} steps; training it again for {RETRY_FACTOR * steps} steps",
            )
        )
        h, w, c = images.shape[1:]
        longer = label_classifier.ClassifierFunctions(
            c, terms.plan.n_classes, (h, w), terms.config.seed, RETRY_FACTOR * steps
        )
        retry, retry_accuracy = _train(
            terms, longer, synthetic, synthetic_ids, RETRY_FACTOR * steps, emit
        )
        if retry_accuracy > accuracy:
            params, accuracy = retry, retry_accuracy
    _gate(terms, accuracy, emit)
    return state.replace(extras={**state.extras, "classifier": params})


def _train(
    terms: LabelTerms,
    fns: label_classifier.ClassifierFunctions,
    synthetic: Any,
    synthetic_ids: np.ndarray,
    steps: int,
    emit: OnEvent,
) -> tuple[Any, float]:
    emit(Stage("train", "classifier", steps))

    def progress(step: int, loss: float) -> None:
        emit(Progress("train", "classifier", step, steps, {"loss": loss}))

    ids = jnp.asarray(synthetic_ids, jnp.int32)
    params = label_classifier.train_classifier(
        fns, synthetic, ids, steps, terms.config.seed, progress
    )
    accuracy = label_classifier.accuracy(fns, params, np.asarray(synthetic), synthetic_ids)
    classes = terms.plan.n_classes
    emit(
        Note(
            "train",
            "info",
            f"label classifier trained ({steps} steps, {classes} classes): "
            f"{accuracy:.1%} of the synthetic images in their class; frozen",
            details={
                "steps": steps,
                "accuracy": accuracy,
                "classes": classes,
                "compiles": fns.trace_count,
            },
        )
    )
    return params, accuracy


def _gate(terms: LabelTerms, accuracy: float, emit: OnEvent) -> None:
    """Turn the label loss off (weight 0) when C is too weak to trust, and say so."""
    if accuracy >= MIN_ACCURACY:
        return
    terms.label_weight = 0.0
    emit(
        Note(
            "train",
            "warning",
            f"label loss off: the label classifier puts only {accuracy:.1%} of the synthetic "
            f"images in their class (needs {MIN_ACCURACY:.0%}); its gradient would repaint "
            "images rather than keep their class. Try a larger --classifier-steps; the L1 "
            "self-regularisation still keeps refined images near their inputs",
            details={"accuracy": accuracy, "label_loss": False},
        )
    )
