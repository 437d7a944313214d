"""RUN/index.html: one self-contained page to watch a run (inline SVG, base64 PNG, no URLs).

Curves of the losses, the discriminator's accuracies and mean_abs_change over steps, red marks
where the health monitor warned, the validation scores of every checkpoint with the best one
marked, and the latest sample grid.
"""

from __future__ import annotations

import base64
import json
import math
from html import escape
from pathlib import Path

from . import selection

COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02")


def _read_metrics(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def chart(
    points: dict[str, list[tuple[float, float]]],
    title: str,
    marks: list[float] = (),  # type: ignore[assignment]
    width: int = 560,
    height: int = 240,
) -> str:
    """Polylines per series (x, y), red vertical lines at `marks`, a legend. Inline SVG."""
    left, right, top, bottom = 56, 12, 26, 28
    pw, ph = width - left - right, height - top - bottom
    finite = [(x, y) for ps in points.values() for x, y in ps if math.isfinite(y)]
    if not finite:
        return f"<p>{escape(title)}: no data yet</p>"
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5

    def px(v):
        return left + (v - x0) / (x1 - x0) * pw

    def py(v):
        return top + (1 - (v - y0) / (y1 - y0)) * ph

    parts = [
        f'<svg width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{width / 2}" y="15" text-anchor="middle" font-size="13">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
    ]
    for i in range(5):
        yv, xv = y0 + (y1 - y0) * i / 4, x0 + (x1 - x0) * i / 4
        parts.append(f'<text x="{left - 4}" y="{py(yv) + 4:.1f}" text-anchor="end">{yv:.3g}</text>')
        parts.append(
            f'<text x="{px(xv):.1f}" y="{top + ph + 14}" text-anchor="middle">{xv:.0f}</text>'
        )
    for m in marks:
        parts.append(
            f'<line x1="{px(m):.1f}" x2="{px(m):.1f}" y1="{top}" y2="{top + ph}" '
            'stroke="#d62728" stroke-opacity="0.5"/>'
        )
    for i, (name, ps) in enumerate(points.items()):
        colour = COLOURS[i % len(COLOURS)]
        good = [(x, y) for x, y in ps if math.isfinite(y)]
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in good)
        if len(good) == 1:
            x, y = good[0]
            parts.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="3" fill="{colour}"/>')
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{pts}"/>')
        parts.append(
            f'<text x="{left + 8}" y="{top + 14 + 13 * i}" fill="{colour}">{escape(name)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _series(records: list[dict], keys: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    return {
        k: [(r["step"], float(r[k])) for r in records if isinstance(r.get(k), int | float)]
        for k in keys
        if any(k in r for r in records)
    }


def _scores_table(records: list[dict], best: int | None) -> str:
    if not records:
        return "<p>No checkpoint scored yet.</p>"
    rows = [
        "<tr><th>step</th><th>phase</th><th>health</th><th>distance</th><th>retention</th></tr>"
    ]
    for r in records:
        mark = ' class="best"' if r["step"] == best else ""
        health = "ok" if r.get("healthy") else escape(", ".join(r.get("health") or ["unhealthy"]))
        dist = "" if r.get("distance") is None else f"{r['distance']:.4g}"
        ret = "" if r.get("retention") is None else f"{r['retention']:.3f}"
        star = " &#9733; best" if r["step"] == best else ""
        rows.append(
            f"<tr{mark}><td>{r['step']}{star}</td><td>{escape(r.get('phase', ''))}</td>"
            f"<td>{health}</td><td>{dist}</td><td>{ret}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def render(run: Path, scores: list[dict], sample: Path | None) -> str:
    run = Path(run)
    metrics = _read_metrics(run)
    best = selection.choose_best(scores)
    warned = [r for r in metrics if r.get("health")]
    marks = [r["step"] for r in warned]
    adversarial = [r for r in metrics if r.get("phase") == "adversarial"]
    charts = [
        chart(
            _series(
                metrics,
                (
                    "refiner_adversarial",
                    "self_regularisation",
                    "disc_real",
                    "disc_refined",
                    "disc_history",
                ),
            ),
            "losses",
            marks,
        ),
        chart(
            _series(metrics, ("disc_acc_real", "disc_acc_refined")), "discriminator accuracy", marks
        ),
        chart(_series(adversarial or metrics, ("mean_abs_change",)), "mean_abs_change", marks),
        chart(
            _series([s for s in scores if s.get("distance") is not None], ("distance",)),
            "validation distance per checkpoint (lower is better)",
            [best.step] if best.step is not None else [],
        ),
        chart(
            _series([s for s in scores if s.get("retention") is not None], ("retention",)),
            "validation label retention per checkpoint",
            [best.step] if best.step is not None else [],
        ),
    ]
    warning_items = "".join(
        f"<li>step {r['step']}: {escape(', '.join(r['health']))}</li>" for r in warned[-50:]
    )
    last = metrics[-1]["step"] if metrics else 0
    best_text = (
        f"best checkpoint: step {best.step} ({escape(best.reason)})"
        + (f"<br><b>warning:</b> {escape(best.warning)}" if best.warning else "")
        if best.step is not None
        else f"no best checkpoint: {escape(best.reason)}"
    )
    image = ""
    if sample is not None and Path(sample).exists():
        data = base64.b64encode(Path(sample).read_bytes()).decode()
        image = (
            f"<h2>Latest samples ({escape(Path(sample).name)})</h2><p>rows: synthetic, "
            f'refined (EMA weights), difference, real</p><img src="data:image/png;base64,{data}">'
        )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>refinekit run {escape(run.name)}</title>
<style>body{{font-family:sans-serif;margin:16px;max-width:1180px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
tr.best td{{background:#e5f5e0;font-weight:bold}}.warn{{color:#b30000}}
.charts svg{{margin:4px}}img{{image-rendering:pixelated;max-width:100%}}</style></head>
<body><h1>refinekit run {escape(run.name)}</h1>
<p>step {last}; {best_text}. Red lines mark log intervals with a health warning (on the
score charts: the best checkpoint).</p>
<div class="charts">{"".join(charts)}</div>
<h2>Health warnings</h2>
{f'<ul class="warn">{warning_items}</ul>' if warning_items else "<p>none</p>"}
<h2>Validation scores per checkpoint</h2>
<p>distance: gap-report's headline distance, held-out refined synthetic vs held-out real (lower
is better); retention: held-out refined images that keep their class.</p>
{_scores_table(scores, best.step)}
{image}
</body></html>
"""
