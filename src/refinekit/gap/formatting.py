"""Numbers as text, shared by the terminal table and the HTML report."""

from __future__ import annotations


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}"


def estimate(entry: dict | None) -> str:
    """'value [low, high]' from a JSON estimate, or '-'."""
    if entry is None:
        return "-"
    return f"{number(entry['value'])} [{number(entry['low'])}, {number(entry['high'])}]"


def percent(entry: dict | None) -> str:
    """Gap closed as 'x% [low, high]', or '-'."""
    if entry is None:
        return "-"
    return f"{entry['value']:.0%} [{entry['low']:.0%}, {entry['high']:.0%}]"


def gap_closed_cell(metric: dict) -> str:
    """Gap closed with what it means: 'improved', 'worse', 'n.s.', or why it is undefined."""
    if metric["refined"] is None:
        return "-"
    if metric["gap_closed"] is None:
        return "no gap" if metric["gap"] and metric["gap"]["low"] <= 0 else "-"
    marks = {"improved": " improved", "worse": " worse", "no significant change": " n.s."}
    return percent(metric["gap_closed"]) + marks.get(metric["outcome"], "")
