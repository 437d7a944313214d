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
from .metrics import SPECS, MetricSpec

SYNTHETIC, REFINED, FLOOR = "synthetic", "refined", "real_holdout"


@dataclass
class Row:
    spec: MetricSpec
    synthetic: Estimate
    floor: Estimate
    refined: Estimate | None = None
    gap: Estimate | None = None  # d(S,R) - d(Ra,Rb) on the distance scale
    change: Estimate | None = None  # d(S,R) - d(F,R): > 0 means refinement moved towards real
    gap_closed: Estimate | None = None
    significant: bool | None = None
    flags: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

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
        row = Row(
            spec,
            synthetic=Estimate.from_replicates(values[SYNTHETIC]).clipped(*spec.bounds),
            floor=Estimate.from_replicates(values[FLOOR]).clipped(*spec.bounds),
        )
        d_syn, d_floor = spec.distance(values[SYNTHETIC]), spec.distance(values[FLOOR])
        row.gap = Estimate.from_replicates(d_syn - d_floor)
        if REFINED in values:
            d_ref = spec.distance(values[REFINED])
            row.refined = Estimate.from_replicates(values[REFINED]).clipped(*spec.bounds)
            row.change = Estimate.from_replicates(d_syn - d_ref)
            row.significant = row.change.excludes_zero()
            if row.gap.low > 0:
                row.gap_closed = _finite_estimate(gap_closed(d_syn, d_ref, d_floor))
            else:
                row.flags.append(
                    "no significant synthetic-to-real gap on this metric, so gap closed is undefined"
                )
        row.details = _details(computed, spec.key)
        rows.append(row)
    return rows


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


def verdict(rows: list[Row]) -> str:
    """One line: how much of the KID gap refinement closed, or how far synthetic is from real."""
    by_key = {row.spec.key: row for row in rows}
    kid = by_key["kid"]
    if kid.refined is None:
        significant = "a significant gap" if kid.gap.low > 0 else "no significant gap"
        text = (
            f"Synthetic vs real: KID {kid.synthetic.value:.3g} (95% CI {kid.synthetic.low:.3g} to "
            f"{kid.synthetic.high:.3g}) against a real-vs-real floor of {kid.floor.value:.3g}, "
            f"{significant}"
        )
        acc = by_key.get("classifier_accuracy")
        if acc is not None:
            text += f"; a domain classifier tells them apart with {acc.synthetic.value:.0%} held-out accuracy"
        return text + "."
    improved = sum(row.outcome == "improved" for row in rows)
    worse = sum(row.outcome == "worse" for row in rows)
    tally = (
        f"{improved} of {len(rows)} metrics improved significantly, {worse} got significantly worse"
    )
    if kid.gap_closed is None:
        return f"No significant synthetic-to-real gap on KID, so nothing to close; {tally}."
    g = kid.gap_closed
    sig = "significant" if kid.significant else "not significant"
    return (
        f"Refinement closed {g.value:.0%} (95% CI {g.low:.0%} to {g.high:.0%}) of the KID gap "
        f"({sig}); {tally}."
    )
