"""The HTML report: one self-contained file (inline CSS, SVG charts, PNG data URIs).

Nothing in it refers to anything outside the file: no scripts, fonts, stylesheets or images
from elsewhere, so it can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path

import numpy as np

from ..io.pixels import unit_to_uint8
from . import formatting
from .svg import line_chart

GRID_COLUMNS = 4
MIN_TILE = 64  # pixels: small images are enlarged (nearest neighbour) to at least this


def png_data_uri(image: np.ndarray) -> str:
    """float HxWxC in [0, 1] -> 'data:image/png;base64,...'."""
    import imageio.v3 as iio

    pixels = unit_to_uint8(image)
    if pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    data = iio.imwrite("<bytes>", pixels, extension=".png")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def sample_grid(images: np.ndarray, columns: int = GRID_COLUMNS) -> np.ndarray:
    """Tile up to rows x columns images with a 1-pixel white gap, enlarged to MIN_TILE."""
    n, h, w, c = images.shape
    scale = max(1, -(-MIN_TILE // max(h, w)))
    big = images.repeat(scale, axis=1).repeat(scale, axis=2)
    h, w = h * scale, w * scale
    rows = -(-n // columns)
    grid = np.ones((rows * (h + 1) + 1, columns * (w + 1) + 1, c), np.float32)
    for i, image in enumerate(big):
        r, col = divmod(i, columns)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + col * (w + 1) : 1 + col * (w + 1) + w] = (
            image
        )
    return grid


def _table(document: dict) -> str:
    has_refined = document["sets"]["refined"] is not None
    head = [
        "Metric",
        "Synthetic vs real",
        *(["Refined vs real"] if has_refined else []),
        "Real vs real (floor)",
        *(["Gap closed"] if has_refined else []),
    ]
    rows = ["<tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr>"]
    for m in document["metrics"]:
        cells = [
            f'<td title="{escape(m["description"])}">{escape(m["name"])} '
            f"<small>({escape(m['better'])} is better)</small></td>",
            f"<td>{escape(formatting.estimate(m['synthetic']))}</td>",
        ]
        if has_refined:
            cells.append(f"<td>{escape(formatting.estimate(m['refined']))}</td>")
        cells.append(f"<td>{escape(formatting.estimate(m['real_floor']))}</td>")
        if has_refined:
            css = {"improved": "good", "worse": "bad"}.get(m["outcome"], "")
            cells.append(f'<td class="{css}">{escape(formatting.gap_closed_cell(m))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
        for flag in m["flags"]:
            rows.append(
                f'<tr class="flag"><td colspan="{len(head)}">{escape(m["name"])}: '
                f"{escape(flag)}</td></tr>"
            )
    return "<table>" + "".join(rows) + "</table>"


def _charts(document: dict) -> str:
    charts = document["charts"]
    spec = charts["spectrum"]
    parts = [
        line_chart(
            spec["frequency"],
            spec["log10_power"],
            "Radially averaged power spectrum",
            "frequency (fraction of Nyquist)",
            "log10 power",
        )
    ]
    hist = charts["histogram"]
    centres = [(a + b) / 2 for a, b in zip(hist["edges"][:-1], hist["edges"][1:], strict=True)]
    names = ["gray"] if len(hist["channels"]) == 1 else ["red", "green", "blue"]
    for name, channel in zip(names, hist["channels"], strict=True):
        parts.append(
            line_chart(centres, channel, f"Intensity histogram, {name}", "intensity", "density")
        )
    return "".join(f'<div class="chart">{p}</div>' for p in parts)


def _grids(samples: dict[str, np.ndarray]) -> str:
    out = []
    for name in ("synthetic", "refined", "real"):
        if name in samples and len(samples[name]):
            uri = png_data_uri(sample_grid(samples[name]))
            out.append(
                f'<figure><img src="{uri}" alt="{name} samples"><figcaption>{name}</figcaption></figure>'
            )
    return "".join(out)


def _verdict(verdict: dict) -> str:
    css = {"improved": "good", "worse": "bad", "mixed": "warn"}.get(verdict["outcome"] or "", "")
    outcome = f" <small>({escape(verdict['outcome'])})</small>" if verdict["outcome"] else ""
    first, *rest = verdict["lines"]
    more = "".join(f"<li>{escape(line)}</li>" for line in rest)
    return f'<p class="verdict {css}"><strong>{escape(first)}</strong>{outcome}</p>' + (
        f"<ul>{more}</ul>" if more else ""
    )


def _retention(document: dict, samples: dict[str, np.ndarray]) -> str:
    """Per-class retention, the confusion matrix and the most confident class changes."""
    row = next((m for m in document["metrics"] if m["key"] == "label_retention"), None)
    if row is None or "refined" not in row["details"]:
        return ""
    d = row["details"]["refined"]
    classes = d["classes"]
    per_class = "".join(
        f"<tr><td>{escape(c)}</td><td>{e['count']}</td>"
        f"<td>{escape(formatting.estimate(e))}</td></tr>"
        for c, e in d["per_class"].items()
    )
    head = "".join(f"<th>{escape(c)}</th>" for c in classes)
    body = "".join(
        f"<tr><th>{escape(c)}</th>"
        + "".join(
            f'<td class="{"diag" if i == j else ("off" if v else "")}">{v}</td>'
            for j, v in enumerate(line)
        )
        + "</tr>"
        for i, (c, line) in enumerate(zip(classes, d["confusion"], strict=True))
    )
    parts = [
        "<h2>Label retention</h2>",
        f"<p>A classifier cross-fitted on the synthetic class folders ({d['folds']} folds) "
        f"recognises {d['ceiling']['value']:.0%} of held-out synthetic images (the ceiling) and "
        f"assigns {row['refined']['value']:.0%} of refined images their original's class.</p>",
        "<table><tr><th>Class</th><th>Images</th><th>Retention</th></tr>" + per_class + "</table>",
        "<p>Confusion matrix: rows are the synthetic label, columns the class predicted for the "
        "refined image.</p>",
        f"<table><tr><th>label \\ predicted</th>{head}</tr>{body}</table>",
    ]
    if "changed_synthetic" in samples and d["changed"]:
        cells = []
        for k, entry in enumerate(d["changed"]):
            pair = np.concatenate(
                [samples["changed_synthetic"][k : k + 1], samples["changed_refined"][k : k + 1]]
            )
            uri = png_data_uri(sample_grid(pair, columns=2))
            caption = (
                f"{entry['label']} -> {entry['predicted']} (p {entry['probability']:.2f})<br>"
                f"<small>{escape(entry.get('synthetic', ''))}</small>"
            )
            cells.append(
                f'<figure><img src="{uri}" alt="changed class"><figcaption>'
                f"{caption}</figcaption></figure>"
            )
        parts.append(
            "<p>Refined images that changed class most confidently (left: synthetic original, "
            "right: refined):</p>" + "".join(cells)
        )
    return "".join(parts)


STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
td:first-child, th:first-child { text-align: left; }
td.good { color: #1b7e57; font-weight: bold; } td.bad { color: #b00; font-weight: bold; }
tr.flag td { text-align: left; color: #8a6d00; font-size: 12px; }
p.verdict { font-size: 17px; } p.good { color: #1b7e57; } p.bad { color: #b00; }
p.warn { color: #a15c00; } td.diag { background: #e4f3ea; } td.off { background: #fbe3e3; }
figcaption { font-size: 12px; max-width: 180px; }
figure { display: inline-block; margin: 0 1em 1em 0; }
img { image-rendering: pixelated; }
.chart { display: inline-block; margin: 0 1em 1em 0; }
code { background: #f4f4f4; padding: 0 3px; }
"""


def render_html(document: dict, samples: dict[str, np.ndarray]) -> str:
    reading, features, sets = document["reading"], document["features"], document["sets"]
    height, width = reading["size"]
    counts = ", ".join(
        f"{name} {sets[name]['count']}"
        for name in ("real", "synthetic", "refined")
        if sets.get(name)
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>refinekit gap report</title>
<style>{STYLE}</style></head><body>
<h1>Synthetic-to-real gap report</h1>
{_verdict(document["verdict"])}
<p>Every set was read the same way: {escape(reading["path"])}; mode {escape(reading["mode"])},
resized to {height}x{width} with an {escape(reading["resize_filter"])} filter where needed;
{escape(reading["value_range"])}. Images: {escape(counts)}; the real set is split into a
reference half ({sets["real"]["reference_count"]}) that every set is compared with and a held-out
half ({sets["real"]["holdout_count"]}) that gives the real-vs-real floor.</p>
<p>Intervals: {int(document["bootstrap"]["confidence"] * 100)}% bootstrap intervals over
{document["bootstrap"]["replicates"]} resamples ({escape(document["bootstrap"]["method"])}); a change
is called significant only when its interval excludes 0. Gap closed = (d(S,R) - d(F,R)) / (d(S,R) - d(Ra,Rb)).</p>
<p>Features: {escape(features["description"])}; SHA-256 <code>{features["sha256"]}</code>.
Note: {escape(features["note"])}. Seed {document["seed"]}.</p>
<h2>Metrics</h2>
{_table(document)}
<h2>Samples</h2>
{_grids(samples)}
{_retention(document, samples)}
<h2>Spectra and histograms</h2>
{_charts(document)}
</body></html>
"""


def write_html(path: Path, report) -> None:
    from .report_json import write_report

    write_report("--html", Path(path), render_html(report.document, report.samples))
