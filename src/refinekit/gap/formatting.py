"""Numbers as text, shared by the terminal table, the verdict and the HTML report.

One format: a value and, when it differs at the shown precision, its interval
('0.412 [0.377, 0.450]', '97% [95%, 99%]', '100%'). Fractions (accuracies, coverage,
retention, gap closed) are percentages everywhere; other values have 3 significant digits.
"""

from __future__ import annotations

# Metrics whose values are fractions in [0, 1], shown as percentages.
PERCENT_KEYS = frozenset(
    {"classifier_accuracy", "coverage", "label_retention", "train_on_x_accuracy"}
)
# Metrics that measure colour, so do not apply to a grayscale comparison.
COLOUR_KEYS = frozenset({"colour"})
# Gap closed at or above this is shown as closed only if the refined set reached the floor.
NEARLY_CLOSED = 0.995
STILL_ABOVE = "still above the floor"


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def pct(value: float | None) -> str:
    """A fraction as a whole percentage; never '100%' or '0%' for a value that is not."""
    if value is None:
        return "-"
    text = f"{value:.0%}"
    if text in ("100%", "-0%", "0%") and value not in (0.0, 1.0):
        text = f"{value:.1%}"
        if text == "100.0%":
            text = ">99.9%" if value < 1 else text
        elif text in ("0.0%", "-0.0%"):
            text = "<0.1%" if value > 0 else ">-0.1%"
    return text


def _with_interval(entry: dict, fmt) -> str:
    value, low, high = fmt(entry["value"]), fmt(entry["low"]), fmt(entry["high"])
    return value if low == value == high else f"{value} [{low}, {high}]"


def estimate(entry: dict | None, percent: bool = False) -> str:
    """'value [low, high]' from a JSON estimate (percentages with percent=True), or '-'."""
    if entry is None:
        return "-"
    return _with_interval(entry, pct if percent else number)


def metric_value(metric: dict, side: str) -> str:
    """One cell of a metric row ('synthetic', 'refined' or 'real_floor') in the metric's unit."""
    return estimate(metric[side], percent=metric["key"] in PERCENT_KEYS)


def percent(entry: dict | None) -> str:
    """Gap closed as 'x% [low, high]', or '-'."""
    return estimate(entry, percent=True)


def still_above_floor(metric: dict) -> bool:
    """Gap closed rounds to 100% (or more) but the refined set is still significantly further
    from real than the real floor."""
    closed, residual = metric.get("gap_closed"), metric.get("refined_gap")
    return (
        closed is not None
        and residual is not None
        and closed["value"] >= NEARLY_CLOSED
        and residual["low"] > 0
    )


def applies(metric: dict, channels: int) -> bool:
    """False for a metric that means nothing here (colour on a grayscale comparison)."""
    if "applies" in metric:
        return bool(metric["applies"])
    return not (channels == 1 and metric["key"] in COLOUR_KEYS)


def gap_closed_cell(metric: dict) -> str:
    """Gap closed with what it means: 'improved', 'worse', 'n.s.', or why it is undefined."""
    if metric["refined"] is None:
        return "-"
    if metric["gap_closed"] is None:
        return "no gap" if metric["gap"] and metric["gap"]["low"] <= 0 else "-"
    marks = {"improved": " improved", "worse": " worse", "no significant change": " n.s."}
    if still_above_floor(metric):
        return STILL_ABOVE + (";" + marks[metric["outcome"]] if metric["outcome"] in marks else "")
    return percent(metric["gap_closed"]) + marks.get(metric["outcome"], "")
