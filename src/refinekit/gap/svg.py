"""A minimal inline-SVG line chart (no plotting library, no external assets)."""

from __future__ import annotations

from html import escape

COLOURS = {
    "synthetic": "#d95f02",
    "refined": "#1b9e77",
    "real": "#222222",
    "real_holdout": "#7570b3",
}
FALLBACK = ("#e7298a", "#66a61e", "#e6ab02", "#a6761d")


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    return [low + (high - low) * i / (count - 1) for i in range(count)]


def line_chart(
    x: list[float],
    series: dict[str, list[float]],
    title: str,
    x_label: str,
    y_label: str,
    width: int = 460,
    height: int = 260,
) -> str:
    """One polyline per series over shared x values; axes with 5 ticks; a legend."""
    left, right, top, bottom = 56, 12, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for ys in series.values() for v in ys]
    y_low, y_high = min(values), max(values)
    if y_high - y_low < 1e-12:
        y_low, y_high = y_low - 0.5, y_high + 0.5
    x_low, x_high = min(x), max(x)
    if x_high - x_low < 1e-12:
        x_high = x_low + 1.0

    def px(v: float) -> float:
        return left + (v - x_low) / (x_high - x_low) * plot_w

    def py(v: float) -> float:
        return top + (1 - (v - y_low) / (y_high - y_low)) * plot_h

    parts = [
        # Inline SVG in HTML5 needs no xmlns, so the file holds no URL at all.
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>',
    ]
    for t in _ticks(x_low, x_high):
        parts.append(
            f'<text x="{px(t):.1f}" y="{top + plot_h + 14}" text-anchor="middle">{t:.3g}</text>'
        )
    for t in _ticks(y_low, y_high):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{py(t):.1f}" y2="{py(t):.1f}" stroke="#eee"/>'
        )
        parts.append(f'<text x="{left - 4}" y="{py(t) + 4:.1f}" text-anchor="end">{t:.3g}</text>')
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 6}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for i, (name, ys) in enumerate(series.items()):
        colour = COLOURS.get(name, FALLBACK[i % len(FALLBACK)])
        points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in zip(x, ys, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{points}"/>'
        )
        ly = top + 12 + 14 * i
        parts.append(
            f'<line x1="{left + plot_w - 110}" x2="{left + plot_w - 92}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{left + plot_w - 88}" y="{ly + 4}">{escape(name.replace("_", " "))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
