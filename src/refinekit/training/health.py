"""The health monitor: collapse signs checked at every log interval (docs/training.md).

Signs, each with a code, a message and what to try:
- non_finite: a logged value is NaN or infinite.
- drift: mean_abs_change far above its value at the end of refiner pretraining (more than
  DRIFT_FACTOR times it and more than DRIFT_MARGIN above it), above DRIFT_FLOOR and more than
  DRIFT_MARGIN above the data's own shift (`mean_shift`): the refiner is being pushed off its
  inputs, e.g. towards solid white by a discriminator that won pretraining.
- identical: the refined batch's per-pixel spread below IDENTICAL_RATIO of the synthetic
  batch's: refined images (nearly) the same whatever the input (mode collapse).
- colour: the spread over the batch of each refined image's mean colour (chroma: RGB minus its
  gray) below COLOUR_RATIO of the smaller of the synthetic and the real batch's: every refined
  image is pushed to one hue (a collapse the per-pixel spread misses, since shapes still vary).
- saturated: every discriminator loss < SATURATED_LOSS, or its accuracy 1 on both sides, for
  SATURATED_INTERVALS intervals in a row: the refiner gets no useful gradient.
Only adversarial-phase records are checked for drift, identical and saturated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..io import pixels

DRIFT_FACTOR = 4.0
DRIFT_MARGIN = 0.4  # in the model's [-1, 1] units, as metrics.jsonl logs mean_abs_change
# A fixed bound for a healthy adversarial phase. Without it a pretraining that ends at the
# identity (0.019 with --lr-pretrain-refiner 1e-3) made every ordinary adversarial step
# (0.42-0.45 on the acquisition case) a "drift", so no checkpoint was healthy.
DRIFT_FLOOR = 0.5
# The data's shift raises that floor where the data demand it: a refiner whose images match the
# real set's per-pixel means must change them by at least mean_shift. On the stress case
# (black vs gray backgrounds) that is 0.53, so an ordinary step at 0.50 is not a drift; a
# refiner gone solid white (1.5-1.9) still is.
IDENTICAL_RATIO = 0.2
COLOUR_RATIO = 0.5
COLOUR_FLOOR = 0.02  # below this both sets are near-gray: no colour variety to lose
SATURATED_LOSS = 0.01
SATURATED_ACCURACY = 0.999
SATURATED_INTERVALS = 3

ADVICE = {
    "non_finite": "try a lower --lr-refiner/--lr-disc or --grad-clip 1",
    "drift": "try a larger --r1-gamma, --ema-decay 0.9999, a lower --lr-refiner or a larger "
    "--lambda-reg; the best checkpoint before this point is kept",
    "identical": "mode collapse: try --augment ada, a larger --r1-gamma or more real images",
    "colour": "colour collapse: try --augment ada, a larger --lambda-reg or a larger "
    "--r1-gamma; the best checkpoint before this point is kept",
    "saturated": "the discriminator wins outright: try --augment ada, a larger --r1-gamma, a "
    "lower --lr-disc or fewer --pretrain-disc-steps",
}


def mean_shift(synthetic, real, chunk: int = 256) -> float:
    """Mean over pixels and channels of |mean real image - mean synthetic image|, in the model's
    [-1, 1] units: a lower bound on the mean |R(x) - x| of any refiner whose images match the
    real set's per-pixel means (|E[R(x) - x]| <= E|R(x) - x| at every pixel).

    synthetic, real: stored uint8/uint16 (N, H, W, C) arrays of one shape per image; summed in
    chunks so a large set is never converted to float at once. 0 when the shapes differ.
    """
    if synthetic.shape[1:] != real.shape[1:] or not len(synthetic) or not len(real):
        return 0.0

    def mean_image(images):
        total = np.zeros(images.shape[1:], np.float64)
        for start in range(0, len(images), chunk):
            total += pixels.to_model_range(images[start : start + chunk]).sum(axis=0)
        return total / len(images)

    return float(np.abs(mean_image(real) - mean_image(synthetic)).mean())


def colour_spread(images):
    """Std over the batch of each image's mean chroma, averaged over channels; 0 for gray.

    images: (B, H, W, C) NumPy or JAX array. Chroma (RGB minus its per-pixel gray) ignores
    brightness, so a refiner that darkens everything alike is not flagged, one that paints
    every image magenta is.
    """
    if images.shape[-1] < 3:
        return (images[..., :1] * 0).mean()
    rgb = images[..., :3]
    chroma = rgb - rgb.mean(axis=-1, keepdims=True)
    return chroma.mean(axis=(1, 2)).std(axis=0).mean()


@dataclass(frozen=True)
class HealthWarning:
    code: str
    message: str

    @property
    def advice(self) -> str:
        return ADVICE[self.code]

    def text(self) -> str:
        return f"{self.message}; {self.advice}"


@dataclass
class HealthMonitor:
    """Feed it each logged record in order; `check` returns the warnings for that record.

    reference_change: mean_abs_change at the end of refiner pretraining (None until seen).
    data_shift: `mean_shift` of the training sets (0: unknown).
    The state is rebuilt on resume by replaying metrics.jsonl (`replay`).
    """

    data_shift: float = 0.0
    reference_change: float | None = None
    saturated_run: int = 0
    history: list[tuple[int, list[str]]] = field(default_factory=list)

    def check(self, record: dict) -> list[HealthWarning]:
        warnings = []
        bad = [k for k, v in record.items() if isinstance(v, float) and not math.isfinite(v)]
        if bad:
            warnings.append(HealthWarning("non_finite", f"non-finite {', '.join(sorted(bad))}"))
        phase = record.get("phase")
        if phase == "pretrain_refiner" and "mean_abs_change" in record:
            self.reference_change = float(record["mean_abs_change"])
        if phase == "adversarial" and not bad:
            warnings += self._adversarial(record)
        self.history.append((int(record["step"]), [w.code for w in warnings]))
        return warnings

    def _adversarial(self, record: dict) -> list[HealthWarning]:
        out = []
        change = float(record["mean_abs_change"])
        ref = self.reference_change if self.reference_change is not None else 0.0
        floor = max(DRIFT_FLOOR, self.data_shift + DRIFT_MARGIN)
        if change > max(DRIFT_FACTOR * ref, ref + DRIFT_MARGIN, floor):
            out.append(
                HealthWarning(
                    "drift",
                    f"refined images drift from their inputs (mean_abs_change {change:.3f}, "
                    f"{ref:.3f} at the end of pretraining, {self.data_shift:.3f} needed to "
                    "match the real set's mean image)",
                )
            )
        spread, base = record.get("refined_spread"), record.get("synthetic_spread")
        if spread is not None and base and spread < IDENTICAL_RATIO * base:
            out.append(
                HealthWarning(
                    "identical",
                    f"refined images are nearly identical across the batch (spread "
                    f"{spread / base:.2f} of the synthetic batch's)",
                )
            )
        keys = ("refined_colour_spread", "synthetic_colour_spread", "real_colour_spread")
        if all(record.get(k) is not None for k in keys):
            colour, base = float(record[keys[0]]), min(float(record[k]) for k in keys[1:])
            if base > COLOUR_FLOOR and colour < COLOUR_RATIO * base:
                out.append(
                    HealthWarning(
                        "colour",
                        f"refined images have lost their colour variety (colour spread "
                        f"{colour / base:.2f} of the synthetic or real batch's)",
                    )
                )
        losses = [record.get(k) for k in ("disc_real", "disc_refined", "disc_history")]
        low = all(v is not None and v < SATURATED_LOSS for v in losses)
        perfect = (
            record.get("disc_acc_real", 0.0) >= SATURATED_ACCURACY
            and record.get("disc_acc_refined", 0.0) >= SATURATED_ACCURACY
        )
        self.saturated_run = self.saturated_run + 1 if (low or perfect) else 0
        if self.saturated_run >= SATURATED_INTERVALS:
            out.append(
                HealthWarning(
                    "saturated",
                    f"the discriminator is saturated (all its losses < {SATURATED_LOSS} or "
                    f"accuracy 1 on both sides) for {self.saturated_run} log intervals",
                )
            )
        return out

    def replay(self, records: list[dict]) -> None:
        """Rebuild the monitor's state from earlier metrics.jsonl records (resume)."""
        for record in records:
            self.check(record)

    def healthy_at(self, step: int) -> bool:
        """True when the last record at or before `step` had no warning and none was non-finite."""
        last = [codes for s, codes in self.history if s <= step]
        if any("non_finite" in codes for codes in last):
            return False
        return bool(last) and not last[-1]
