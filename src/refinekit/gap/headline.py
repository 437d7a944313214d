"""The headline distance: several distances, each standardised by its real-vs-real floor.

No single weights-free distance sees every kind of difference (random-feature KID misses
colour, the spectrum misses a swirl, histograms miss blur), and raw features of different
metrics cannot be concatenated (the largest swamp the rest). So each component distance d_k is
turned into a z-score against the floor, the same distance between the two disjoint real
halves: z_k(X) = (d_k(X, Ra) - d_k(Rb, Ra)) / sd_k, with sd_k the bootstrap standard deviation
of d_k(Rb, Ra). The headline is the mean of the z_k: 0 for a set as close to the reference
half as the other real half is, and k for a set k floor standard deviations further away on
average. The constants (floor point estimate, sd) are fixed per report, so every bootstrap
replicate of every comparison is standardised the same way, and "gap closed" on the headline
is a weighted mean of the components' gap closed.
"""

from __future__ import annotations

import numpy as np

KEY = "headline"
COMPONENTS = (
    "kid",
    "swd",
    "spectrum_low",
    "spectrum_mid",
    "spectrum_high",
    "spectrum_orientation",
    "intensity_w1",
    "colour",
)
DESCRIPTION = (
    "Mean over components ("
    + ", ".join(COMPONENTS)
    + ") of (d(X, real) - d(real holdout, real)) / bootstrap sd of d(real holdout, real): "
    "0 = as close as a disjoint real set, higher = further from real, in floor standard deviations"
)


def standardisers(floor: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """component -> (centre, scale) from its floor values (point estimate, then replicates)."""
    out = {}
    for key, values in floor.items():
        values = np.asarray(values, np.float64)
        centre = float(values[0])
        scale = float(np.std(values[1:], ddof=1)) if len(values) > 2 else 0.0
        if not np.isfinite(scale) or scale <= 1e-12 * max(1.0, abs(centre)):
            scale = max(abs(centre), 1e-12)  # a degenerate floor: relative change instead
        out[key] = (centre, scale)
    return out


def combine(
    values: dict[str, dict[str, np.ndarray]], floor: str
) -> tuple[dict[str, np.ndarray], dict[str, dict]]:
    """values[component][set] (1 + R,) distances -> headline[set] (1 + R,) and details.

    details[set] = {"components": {component: point z}, "scale": {component: sd}}.
    """
    present = [k for k in COMPONENTS if k in values and floor in values[k]]
    scales = standardisers({k: values[k][floor] for k in present})
    sets = values[present[0]].keys()
    headline, details = {}, {}
    for name in sets:
        z = {k: (values[k][name] - scales[k][0]) / scales[k][1] for k in present}
        stacked = np.stack(list(z.values()))
        headline[name] = np.mean(np.sign(stacked) * np.log1p(np.abs(stacked)), axis=0)
        details[name] = {
            "components": {k: float(v[0]) for k, v in z.items()},
        }
    details[floor]["floor_sd"] = {k: scales[k][1] for k in present}
    return headline, details
