"""From per-replicate metric values to report rows: estimates with intervals, the change
refinement made, gap closed, significance, and the one-line verdict.

Comparisons are named "synthetic", "refined" and "real_holdout" (the floor: the held-out real
half against the reference half). A change is significant only when its 95% interval
excludes 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RefinekitError
from .bootstrap import Estimate, gap_closed
from .compute import Computed
from .formatting import COLOUR_KEYS
from .metrics import SPECS, MetricSpec

SYNTHETIC, REFINED, FLOOR = "synthetic", "refined", "real_holdout"


@dataclass
class Row:
    spec: MetricSpec
    synthetic: Estimate
    floor: Estimate | None  # None for label retention (no real-vs-real counterpart)
    refined: Estimate | None = None
    gap: Estimate | None = None  # d(S,R) - d(Ra,Rb) on the distance scale
    change: Estimate | None = None  # d(S,R) - d(F,R): > 0 means refinement moved towards real
    gap_closed: Estimate | None = None
    residual: Estimate | None = None  # d(F,R) - d(Ra,Rb): > 0 means refined still above floor
    significant: bool | None = None
    flags: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    applies: bool = True  # False: means nothing here (colour metrics on a grayscale set)

    @property
    def outcome(self) -> str:
        """improved / worse / no significant change / no gap / '' (no refined set)."""
        if self.change is None:
            return ""
        if not self.significant:
            return "no significant change"
        return "improved" if self.change.value > 0 else "worse"


def summarise(computed: Computed) -> list[Row]:
    """Rows for every computed metric, in SPECS order; raises on any non-finite value."""
    rows = []
    for spec in SPECS:
        values = computed.values.get(spec.key)
        if not values:
            continue
        _check_finite(spec, values)
        has_floor = FLOOR in values
        row = Row(
            spec,
            synthetic=Estimate.from_replicates(values[SYNTHETIC]).clipped(*spec.bounds),
            floor=Estimate.from_replicates(values[FLOOR]).clipped(*spec.bounds)
            if has_floor
            else None,
        )
        d_syn = spec.distance(values[SYNTHETIC])
        d_floor = spec.distance(values[FLOOR]) if has_floor else None
        if d_floor is not None:
            row.gap = Estimate.from_replicates(d_syn - d_floor)
        if REFINED in values:
            d_ref = spec.distance(values[REFINED])
            row.refined = Estimate.from_replicates(values[REFINED]).clipped(*spec.bounds)
            row.change = Estimate.from_replicates(d_syn - d_ref)
            row.significant = row.change.excludes_zero()
            if d_floor is not None:
                row.residual = Estimate.from_replicates(d_ref - d_floor)
            if d_floor is None:
                pass
            elif row.gap is not None and row.gap.low > 0:
                row.gap_closed = _finite_estimate(gap_closed(d_syn, d_ref, d_floor))
            else:
                row.flags.append(
                    "no significant synthetic-to-real gap on this metric, so gap closed is undefined"
                )
        row.details = _details(computed, spec.key)
        rows.append(row)
    if _channels(computed) == 1:
        for row in rows:
            row.applies = row.spec.key not in COLOUR_KEYS
    return rows


def _channels(computed: Computed) -> int | None:
    """The compared channel count, from the per-channel intensity details (None: unknown)."""
    for extra in computed.details.get("intensity_w1", {}).values():
        per_channel = extra.get("per_channel")
        if isinstance(per_channel, np.ndarray) and per_channel.ndim == 2:
            return int(per_channel.shape[1])
    return None


def _check_finite(spec: MetricSpec, values: dict[str, np.ndarray]) -> None:
    for name, array in values.items():
        bad = ~np.isfinite(array)
        if bad.any():
            where = "the point estimate" if bad[0] else f"{int(bad.sum())} bootstrap replicates"
            raise RefinekitError(
                f"{spec.name} of {name.replace('_', ' ')} vs real is not finite in {where} "
                f"(first value {array[np.argmax(bad)]}); the images or features hold NaN/inf or a "
                "set is degenerate (e.g. all images identical)"
            )


def _finite_estimate(values: np.ndarray) -> Estimate | None:
    """Gap closed divides by a replicate's gap, which can be ~0: drop non-finite replicates."""
    if not np.isfinite(values[0]):
        return None
    finite = np.concatenate([values[:1], values[1:][np.isfinite(values[1:])]])
    return Estimate.from_replicates(finite)


def _details(computed: Computed, key: str) -> dict:
    """Extra numbers per comparison (p-values, per-channel values) as plain JSON types."""
    out = {}
    for name, extra in computed.details.get(key, {}).items():
        entry = {}
        for field_name, value in extra.items():
            if isinstance(value, np.ndarray) and value.ndim == 2:  # (replicates, channels)
                entry[field_name] = [
                    Estimate.from_replicates(value[:, c]).as_dict() for c in range(value.shape[1])
                ]
            else:
                entry[field_name] = value
        out[name] = entry
    return out
