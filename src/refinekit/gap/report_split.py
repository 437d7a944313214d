"""The gap split's HTML section (split.py's numbers): a waterfall from train-on-synthetic to
train-on-real accuracy through each part, and a table with each part's advice."""

from __future__ import annotations

import numpy as np

from . import formatting
from .split_advice import NAMES, interval, signed
from .svg import COLOURS, PALETTE, Bar, attr, bar_rows

SPLIT_COLOURS = {
    "distribution": PALETTE[0],
    "refinement": COLOURS["refined"],
    "remaining": PALETTE[1],
}
SPLIT_ROWS = {
    "distribution": "+ content mix",
    "refinement": "+ refinement",
    "remaining": "+ remaining",
}


def _zoom(bars: list[Bar]) -> tuple[float, float]:
    """The accuracy range worth showing, in whole tenths: the steps are a few points wide, so
    an axis from 0% would draw them as slivers (level bars then start at the left edge)."""
    values = [
        v for b in bars for v in (b.end, b.low, b.high) if v is not None and b.start is not None
    ]
    low = max(0.0, np.floor((min(values) - 0.05) * 10) / 10)
    high = min(1.0, np.ceil((max(values) + 0.02) * 10) / 10)
    return float(low), float(max(high, low + 0.1))


def split_section(document: dict) -> str:
    """The gap split: a waterfall from train-on-synthetic to train-on-real accuracy, a table
    with each part's advice, or which parts could not be measured and why."""
    section = document.get("gap_split")
    if not section:
        return ""
    head = "<h2>Where the gap is, for a classifier</h2>"
    if not section["measured"]:
        by_reason: dict[str, list[str]] = {}  # parts that share a reason are listed together
        for m in section["not_measured"]:
            by_reason.setdefault(m["reason"], []).append(NAMES.get(m["part"], m["part"]))
        missing = "".join(
            f"<li>{attr(', '.join(names))}: {attr(reason)}</li>"
            for reason, names in by_reason.items()
        )
        return head + f"<p>Not measured:</p><ul>{missing}</ul>"
    accuracy, parts = section["accuracy"], {p["key"]: p for p in section["parts"]}

    def level(name: str, label: str, colour: str) -> Bar:
        a = accuracy[name]
        text = formatting.estimate(
            {"value": a["accuracy"], "low": a["interval"][0], "high": a["interval"][1]},
            percent=True,
        )
        low, high = a["interval"]
        return Bar(label, 0.0, a["accuracy"], colour, low, high, text=text)

    bars = [level("synthetic", "trained on synthetic", COLOURS["synthetic"])]
    at = accuracy["synthetic"]["accuracy"]
    for key in ("distribution", "refinement", "remaining"):
        p = parts[key]
        if not p["measured"]:
            bars.append(Bar(SPLIT_ROWS[key], None, None, "", text="not measured"))
            continue
        colour = SPLIT_COLOURS[key]
        bars.append(
            Bar(
                SPLIT_ROWS[key],
                at,
                at + p["value"],
                colour,
                at + p["low"],
                at + p["high"],
                text=interval(p),
            )
        )
        at += p["value"]
    bars.append(level("real", "trained on real", COLOURS["real"]))
    chart = bar_rows(
        bars,
        title=f"Accuracy on held-out real images: total gap {interval(parts['total'])}",
        x_label="accuracy on held-out real images",
        x_range=_zoom(bars),
        percent=True,
    )

    def orders(p: dict) -> str:
        if "alone" not in p:
            return ""
        return f"{signed(p['alone'])} / {signed(p['after_the_other'])}"

    rows = "".join(
        f"<tr><td>{attr(p['name'])}</td>"
        f"<td>{attr(interval(p) if p['measured'] else 'not measured')}</td>"
        f"<td>{attr(orders(p))}</td>"
        f'<td class="advice">{attr(p["advice"] if p["measured"] else p["reason"])}</td></tr>'
        for p in section["parts"]
    )
    real = section["labelled_real"]
    if section.get("caution"):
        head += f'<p class="warn">Caution: {attr(section["caution"])}.</p>'
    return (
        head + f"<p>A small CNN ({attr(len(section['classifier']['seeds']))} seeds) trained on "
        f"{attr(section['training_images'])} images of each set, tested on "
        f"{attr(real['test'])} held-out labelled real images ({attr(real['source'])}); "
        f"intervals {attr(round(section['classifier']['level'] * 100))}% bootstrap over the "
        "test images.</p>"
        + f'<div class="chart">{chart}</div>'
        + "<table><tr><th>Part</th><th>Accuracy change</th><th>Alone / after the other fix</th>"
        + '<th class="advice">What to do</th></tr>'
        + rows
        + f"</table><p><small>{attr(section['adds_up'])}.</small></p>"
    )
