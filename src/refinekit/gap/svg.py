"""The one inline-SVG chart kit of every HTML page refinekit writes (the gap report and a
training run's index.html): line charts with gaps where a value was not computed, 1-2-5
ticks, axis labels, fixed ranges, a legend above the plot (no line crosses it), vertical marks
and shaded bands. No plotting library, no external assets, no script.

Every text and attribute value goes through `escape` here, so names from data (folders,
classes, runs) never become markup.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# One colour per meaning, shared by both pages.
COLOURS = {
    "synthetic": "#d95f02",
    "refined": "#1f77b4",
    "real": "#333333",
    "real_holdout": "#9467bd",
}
GOOD = "#1b7e57"  # improved; the best checkpoint
BAD = "#c62828"  # worse; a health warning
CAUTION = "#a15c00"  # mixed, or improved with caveats
BAND = "#ececec"  # shaded x ranges (pretraining)
# Further series: no red or green (those mean bad and good).
PALETTE = ("#7570b3", "#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#e377c2")
LABELS = {"real_holdout": "real (held-out half)"}
CHAR_W = 5.9  # average width of an 11 px sans-serif character, for the legend layout


@dataclass(frozen=True)
class Series:
    """One line: (x, y) points; y None or non-finite is a gap (the line breaks there)."""

    label: str
    points: Sequence[tuple[float, float | None]]
    colour: str
    markers: bool = False  # a dot at every point (few points: one per checkpoint)


@dataclass(frozen=True)
class Mark:
    """A vertical line at x; marks with the same label share one legend entry."""

    x: float
    label: str
    colour: str
    strong: bool = False  # thicker and dashed (the best checkpoint), else thin (warnings)


@dataclass(frozen=True)
class Band:
    """A shaded x range (e.g. a pretraining phase), with a legend entry."""

    x0: float
    x1: float
    label: str


def attr(value: object) -> str:
    """Any value as escaped text, safe in element content and quoted attributes."""
    return escape(str(value), quote=True)


def _finite(v: float | None) -> bool:
    return v is not None and isinstance(v, int | float) and math.isfinite(v)


def nice_step(span: float, target: int = 5) -> float:
    """The 1-2-5 step that cuts `span` into about `target` intervals."""
    raw = span / max(target, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * magnitude * (1 + 1e-9):
            return m * magnitude
    return 10 * magnitude


def nice_range(low: float, high: float, target: int = 5) -> tuple[float, float]:
    """[low, high] widened to whole 1-2-5 steps (a flat series gets a unit-wide range)."""
    if high - low < 1e-12 * max(1.0, abs(low), abs(high)):
        pad = 0.5 if abs(low) < 1 else 10 ** math.floor(math.log10(abs(low))) / 2
        low, high = low - pad, high + pad
    step = nice_step(high - low, target)
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step


def ticks(low: float, high: float, target: int = 5) -> tuple[list[float], float]:
    """Round tick values in [low, high], 1-2-5 steps apart, and the step."""
    step = nice_step(high - low, target)
    first = math.ceil(low / step - 1e-9)
    out = []
    k = first
    while k * step <= high + step * 1e-9:
        out.append(k * step)
        k += 1
    return out, step


def tick_text(value: float, step: float) -> str:
    """A tick label with exactly the decimals its step needs (0.85, not 0.853)."""
    if abs(value) < step * 1e-6:
        value = 0.0
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if decimals > 4 or abs(value) >= 1e6:
        return f"{value:.2g}"
    return f"{value:.{decimals}f}"


def _legend(entries: list[tuple[str, str, str]], x0: float, x_max: float, y0: float):
    """(label, kind, colour) entries laid out in rows from (x0, y0): svg parts and the rows."""
    parts, x, y, rows = [], x0, y0, 1 if entries else 0
    for label, kind, colour in entries:
        w = 22 + CHAR_W * len(label) + 12
        if x > x0 and x + w > x_max:
            x, y, rows = x0, y + 15, rows + 1
        c = attr(colour)
        if kind == "band":
            parts.append(f'<rect x="{x:.1f}" y="{y - 5}" width="18" height="10" fill="{c}"/>')
        elif kind == "mark":
            parts.append(
                f'<line x1="{x + 9:.1f}" x2="{x + 9:.1f}" y1="{y - 6}" y2="{y + 6}" '
                f'stroke="{c}" stroke-width="2"/>'
            )
        else:
            parts.append(
                f'<line x1="{x:.1f}" x2="{x + 18:.1f}" y1="{y}" y2="{y}" stroke="{c}" '
                'stroke-width="2.5"/>'
            )
        parts.append(f'<text x="{x + 22:.1f}" y="{y + 4}">{attr(label)}</text>')
        x += w
    return parts, rows


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float | None, float | None] | None = None,
    marks: Sequence[Mark] = (),
    bands: Sequence[Band] = (),
    width: int = 460,
    height: int = 300,
) -> str:
    """An inline SVG line chart; a short paragraph instead when there is nothing to draw.

    x_range / y_range fix an axis (a None end of y_range follows the data); otherwise the data
    range is widened to whole 1-2-5 steps."""
    xs = [x for s in series for x, y in s.points if _finite(y) and _finite(x)]
    ys = [y for s in series for x, y in s.points if _finite(y) and _finite(x)]
    if not xs:
        return f'<p class="empty">{attr(title)}: no data yet.</p>'
    x_low, x_high = x_range or nice_range(min(xs), max(xs))
    fixed_low, fixed_high = y_range or (None, None)
    y_low, y_high = nice_range(
        min(ys) if fixed_low is None else fixed_low,  # type: ignore[type-var, arg-type]
        max(ys) if fixed_high is None else fixed_high,  # type: ignore[type-var, arg-type]
    )

    entries = [(s.label, "line", s.colour) for s in series if any(_finite(y) for _, y in s.points)]
    for m in marks:
        if (m.label, "mark", m.colour) not in entries:
            entries.append((m.label, "mark", m.colour))
    for b in bands:
        if (b.label, "band", BAND) not in entries:
            entries.append((b.label, "band", BAND))
    left, right, bottom = 58, 14, 42
    legend, rows = _legend(entries, left, width - right, 38)
    top = 38 + 15 * rows + 4
    plot_w, plot_h = width - left - right, height - top - bottom

    def px(v: float) -> float:
        v = min(max(v, x_low), x_high)
        return left + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        v = min(max(v, y_low), y_high)
        return top + (1 - (v - y_low) / (y_high - y_low)) * plot_h

    parts = [
        # Inline SVG in HTML5 needs no xmlns, so the file holds no URL at all.
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{attr(title)}" font-family="sans-serif" font-size="11" fill="#222">',
        f'<text x="{left}" y="18" font-size="13" font-weight="bold">{attr(title)}</text>',
        *legend,
    ]
    for b in bands:
        x0, x1 = px(b.x0), px(b.x1)
        parts.append(
            f'<rect x="{x0:.1f}" y="{top}" width="{max(0.0, x1 - x0):.1f}" height="{plot_h}" '
            f'fill="{BAND}"/>'
        )
    x_ticks, x_step = ticks(x_low, x_high)
    y_ticks, y_step = ticks(y_low, y_high)
    for t in y_ticks:
        y = py(t)
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e4e4e4"/>'
        )
        parts.append(
            f'<text x="{left - 5}" y="{y + 4:.1f}" text-anchor="end">{tick_text(t, y_step)}</text>'
        )
    for t in x_ticks:
        x = px(t)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + plot_h}" y2="{top + plot_h + 4}" '
            'stroke="#999"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
            f"{tick_text(t, x_step)}</text>"
        )
    parts.append(
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>'
    )
    for m in marks:
        style = 'stroke-width="2" stroke-dasharray="5 3"' if m.strong else 'stroke-opacity="0.45"'
        parts.append(
            f'<line x1="{px(m.x):.1f}" x2="{px(m.x):.1f}" y1="{top}" y2="{top + plot_h}" '
            f'stroke="{attr(m.colour)}" {style}/>'
        )
    for s in series:
        parts.extend(_polylines(s, px, py))
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle">{attr(x_label)}</text>'
    )
    mid = top + plot_h / 2
    parts.append(
        f'<text x="14" y="{mid:.1f}" text-anchor="middle" transform="rotate(-90 14 {mid:.1f})">'
        f"{attr(y_label)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _polylines(s: Series, px, py) -> list[str]:
    """One polyline per run of finite points; a lone point is a dot."""
    colour = attr(s.colour)
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in s.points:
        if _finite(y) and _finite(x):
            runs[-1].append((px(x), py(y)))
        elif runs[-1]:
            runs.append([])
    out = []
    for run in runs:
        if len(run) > 1:
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in run)
            out.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="1.7" '
                f'stroke-linejoin="round" points="{points}"/>'
            )
        if len(run) == 1 or (s.markers and run):
            out.extend(
                f'<circle cx="{a:.1f}" cy="{b:.1f}" r="2.6" fill="{colour}"/>' for a, b in run
            )
    return out


def set_series(x: Sequence[float], values: dict[str, Sequence[float]]) -> list[Series]:
    """Series named after the gap report's sets (synthetic, refined, real, real_holdout)."""
    out = []
    order = {name: i for i, name in enumerate(COLOURS)}  # synthetic, refined, real, held-out
    ranked = sorted(values.items(), key=lambda item: order.get(item[0], len(order)))
    for i, (name, ys) in enumerate(ranked):
        colour = COLOURS.get(name, PALETTE[i % len(PALETTE)])
        out.append(Series(LABELS.get(name, name), list(zip(x, ys, strict=True)), colour))
    return out


@dataclass(frozen=True)
class Bar:
    """One row of a bar chart: a bar from start to end; optional whisker (low, high) and text
    at the right."""

    label: str
    start: float | None  # None: an empty row (its text says why)
    end: float | None
    colour: str
    low: float | None = None
    high: float | None = None
    text: str = ""


def bar_rows(
    bars: Sequence[Bar],
    *,
    title: str,
    x_label: str,
    x_range: tuple[float, float],
    width: int = 720,
    percent: bool = False,
) -> str:
    """An inline SVG of horizontal bars, one per row, on one x axis: floating bars make a
    waterfall (each step starting where the previous ended). Labels at the left, text at the
    right; x ticks as percentages with percent=True."""
    label_w = max(60.0, CHAR_W * max((len(b.label) for b in bars), default=0) + 12)
    text_w = max(60.0, CHAR_W * max((len(b.text) for b in bars), default=0) + 12)
    row_h, top, bottom = 24, 30, 40
    left, right = label_w, width - text_w
    height = top + row_h * len(bars) + bottom
    x_low, x_high = x_range

    def px(v: float) -> float:
        v = min(max(v, x_low), x_high)
        return left + (v - x_low) / (x_high - x_low) * (right - left)

    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{attr(title)}" font-family="sans-serif" font-size="11" fill="#222">',
        f'<text x="4" y="18" font-size="13" font-weight="bold">{attr(title)}</text>',
    ]
    x_ticks, x_step = ticks(x_low, x_high)
    plot_bottom = top + row_h * len(bars)
    for t in x_ticks:
        x = px(t)
        label = f"{t * 100:.0f}%" if percent else tick_text(t, x_step)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{plot_bottom}" stroke="#e4e4e4"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{plot_bottom + 14}" text-anchor="middle">{attr(label)}</text>'
        )
    for i, bar in enumerate(bars):
        y = top + i * row_h
        mid = y + row_h / 2
        parts.append(
            f'<text x="{left - 6:.1f}" y="{mid + 4:.1f}" text-anchor="end">{attr(bar.label)}</text>'
        )
        if _finite(bar.start) and _finite(bar.end):
            assert bar.start is not None and bar.end is not None
            x0, x1 = sorted((px(bar.start), px(bar.end)))
            parts.append(
                f'<rect x="{x0:.1f}" y="{y + 5}" width="{max(x1 - x0, 1.0):.1f}" '
                f'height="{row_h - 10}" fill="{attr(bar.colour)}"/>'
            )
        if _finite(bar.low) and _finite(bar.high):
            assert bar.low is not None and bar.high is not None
            a, b = px(bar.low), px(bar.high)
            for x1, x2, y1, y2 in (
                (a, b, mid, mid),
                (a, a, mid - 5, mid + 5),
                (b, b, mid - 5, mid + 5),
            ):
                parts.append(
                    f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y1:.1f}" y2="{y2:.1f}" stroke="#222"/>'
                )
        parts.append(f'<text x="{right + 8:.1f}" y="{mid + 4:.1f}">{attr(bar.text)}</text>')
    parts.append(
        f'<line x1="{left}" x2="{right}" y1="{plot_bottom}" y2="{plot_bottom}" stroke="#999"/>'
    )
    parts.append(
        f'<text x="{(left + right) / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        f"{attr(x_label)}</text>"
    )
    parts.append("</svg>")
    return "".join(parts)
