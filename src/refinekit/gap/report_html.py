"""The HTML report: one self-contained file (inline CSS, SVG charts, PNG data URIs).

Nothing in it refers to anything outside the file: no scripts, fonts, stylesheets or images
from elsewhere, so it can be mailed or archived as it is. Every name from the data (paths,
class folders, file names) is escaped; the charts come from the kit in svg.py, shared with a
training run's index.html.
"""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

from ..io.pixels import unit_to_uint8
from ..io.tiles import tile
from . import formatting
from .report_split import split_section
from .svg import BAD, CAUTION, GOOD, attr, line_chart, set_series

GRID_COLUMNS = 4
CHART_WIDTH = 520  # two charts per row
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
    _, h, w, _ = images.shape
    scale = max(1, -(-MIN_TILE // max(h, w)))
    rows = [list(images[i : i + columns]) for i in range(0, len(images), columns)]
    return tile(rows, gap=1, fill=1.0, zoom=scale, columns=columns).astype(np.float32)


def _table(document: dict) -> str:
    has_refined = document["sets"]["refined"] is not None
    channels = document["reading"].get("channels", 3)
    head = [
        "Metric",
        "Synthetic vs real",
        *(["Refined vs real"] if has_refined else []),
        "Real vs real (floor)",
        *(["Gap closed"] if has_refined else []),
    ]
    rows = ["<tr>" + "".join(f"<th>{attr(h)}</th>" for h in head) + "</tr>"]
    left_out = []
    for m in document["metrics"]:
        if not formatting.applies(m, channels):
            left_out.append(m["name"])
            continue
        cells = [
            f'<td title="{attr(m["description"])}">{attr(m["name"])} '
            f"<small>({attr(m['better'])} is better)</small></td>",
            f"<td>{attr(formatting.metric_value(m, 'synthetic'))}</td>",
        ]
        if has_refined:
            cells.append(f"<td>{attr(formatting.metric_value(m, 'refined'))}</td>")
        cells.append(f"<td>{attr(formatting.metric_value(m, 'real_floor'))}</td>")
        if has_refined:
            css = {"improved": "good", "worse": "bad"}.get(m["outcome"], "")
            cells.append(f'<td class="{css}">{attr(formatting.gap_closed_cell(m))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
        for flag in m["flags"]:
            rows.append(
                f'<tr class="flag"><td colspan="{len(head)}">{attr(m["name"])}: '
                f"{attr(flag)}</td></tr>"
            )
    note = (
        f"<p><small>Left out (they do not apply to a grayscale comparison): "
        f"{attr(', '.join(left_out))}.</small></p>"
        if left_out
        else ""
    )
    return "<table>" + "".join(rows) + "</table>" + note


def _charts(document: dict) -> str:
    charts = document["charts"]
    spec = charts["spectrum"]
    parts = [
        line_chart(
            set_series(spec["frequency"], spec["log10_power"]),
            title="Radially averaged power spectrum",
            x_label="frequency (fraction of Nyquist)",
            y_label="log10 power",
            x_range=(0.0, 1.0),
            width=CHART_WIDTH,
        )
    ]
    hist = charts["histogram"]
    centres = [(a + b) / 2 for a, b in zip(hist["edges"][:-1], hist["edges"][1:], strict=True)]
    names = ["gray"] if len(hist["channels"]) == 1 else ["red", "green", "blue"]
    for name, channel in zip(names, hist["channels"], strict=True):
        parts.append(
            line_chart(
                set_series(centres, channel),
                title=f"Intensity histogram, {name}",
                x_label="intensity",
                y_label="density",
                x_range=(0.0, 1.0),
                y_range=(0.0, None),
                width=CHART_WIDTH,
            )
        )
    return "".join(f'<div class="chart">{p}</div>' for p in parts)


def _grids(samples: dict[str, np.ndarray]) -> str:
    out = []
    for name in ("synthetic", "refined", "real"):
        if name in samples and len(samples[name]):
            uri = png_data_uri(sample_grid(samples[name]))
            out.append(
                f'<figure><img src="{uri}" alt="{attr(name)} samples">'
                f"<figcaption>{attr(name)}</figcaption></figure>"
            )
    return "".join(out)


def _verdict(verdict: dict) -> str:
    """The first line large and coloured by what it says; the other lines below it."""
    outcome = verdict["outcome"] or ""
    caveats = verdict.get("caveats") or []
    css = {"improved": "good", "worse": "bad", "mixed": "warn"}.get(outcome, "")
    tag = outcome
    if outcome == "improved" and caveats:
        css, tag = "warn", "improved, with caveats"
    label = f' <span class="tag {css}">{attr(tag)}</span>' if tag else ""
    first, *rest = verdict["lines"]
    more = "".join(f"<li>{attr(line)}</li>" for line in rest)
    return f'<p class="verdict {css}">{attr(first)}{label}</p>' + (
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
        f"<tr><td>{attr(c)}</td><td>{attr(e['count'])}</td>"
        f"<td>{attr(formatting.estimate(e, percent=True))}</td></tr>"
        for c, e in d["per_class"].items()
    )
    head = "".join(f"<th>{attr(c)}</th>" for c in classes)
    body = "".join(
        f"<tr><th>{attr(c)}</th>"
        + "".join(
            f'<td class="{"diag" if i == j else ("off" if v else "")}">{attr(v)}</td>'
            for j, v in enumerate(line)
        )
        + "</tr>"
        for i, (c, line) in enumerate(zip(classes, d["confusion"], strict=True))
    )
    parts = [
        "<h2>Label retention</h2>",
        f"<p>A classifier cross-fitted on the synthetic class folders ({attr(d['folds'])} folds) "
        f"recognises {formatting.pct(d['ceiling']['value'])} of held-out synthetic images (the "
        f"ceiling) and assigns {formatting.pct(row['refined']['value'])} of refined images their "
        "original's class.</p>",
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
            probability = f"{entry['probability']:.2f}"
            caption = (
                f"{attr(entry['label'])} &rarr; {attr(entry['predicted'])} "
                f"(p {attr(probability)})<br><small>{attr(entry.get('synthetic', ''))}</small>"
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


STYLE = f"""
body {{ font-family: sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
h1 {{ margin-bottom: 2px; }} p.sub {{ color: #666; margin-top: 0; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
.good {{ color: {GOOD}; }} .bad {{ color: {BAD}; }} .warn {{ color: {CAUTION}; }}
td.good, td.bad {{ font-weight: bold; }}
tr.flag td {{ text-align: left; color: {CAUTION}; font-size: 12px; }}
p.verdict {{ font-size: 19px; font-weight: bold; border-left: 5px solid currentColor;
  padding: 6px 12px; background: #f7f7f7; }}
.tag {{ font-size: 13px; font-weight: normal; border: 1px solid currentColor; border-radius: 3px;
  padding: 0 5px; margin-left: 6px; white-space: nowrap; }}
td.diag {{ background: #e3f2ea; }} td.off {{ background: #fbe3e3; }}
figcaption {{ font-size: 12px; max-width: 180px; overflow-wrap: anywhere; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }}
img {{ image-rendering: pixelated; }}
.chart {{ display: inline-block; margin: 0 1em 1em 0; }}
details {{ margin-top: 2em; color: #444; }} summary {{ cursor: pointer; font-weight: bold; }}
code {{ background: #f4f4f4; padding: 0 3px; overflow-wrap: anywhere; }}
.advice {{ text-align: left; max-width: 560px; }}
"""


def _set_name(sets: dict, name: str) -> str:
    entry = sets.get(name)
    if not isinstance(entry, dict) or not entry.get("path"):
        return name
    return Path(str(entry["path"])).name or str(entry["path"])


def _method(document: dict) -> str:
    """How the numbers were made: reading, intervals, features (folded, at the end)."""
    reading, features, sets = document["reading"], document["features"], document["sets"]
    height, width = reading["size"]
    boot = document["bootstrap"]
    return f"""<details><summary>How these numbers were made</summary>
<p>Every set was read the same way: {attr(reading["path"])}; mode {attr(reading["mode"])},
resized to {attr(height)}x{attr(width)} with an {attr(reading["resize_filter"])} filter where
needed; {attr(reading["value_range"])}. The real set is split into a reference half
({attr(sets["real"]["reference_count"])}) that every set is compared with and a held-out half
({attr(sets["real"]["holdout_count"])}) that gives the real-vs-real floor.</p>
<p>Intervals: {attr(int(boot["confidence"] * 100))}% bootstrap intervals over
{attr(boot["replicates"])} resamples ({attr(boot["method"])}); a change is called significant
only when its interval excludes 0. Gap closed = (d(S,R) - d(F,R)) / (d(S,R) - d(Ra,Rb));
"still above the floor" where it rounds to 100% but the refined set is still significantly
further from real than the held-out real half.</p>
<p>Features: {attr(features["description"])}; SHA-256 <code>{attr(features["sha256"])}</code>.
Note: {attr(features["note"])}. Seed {attr(document["seed"])}.</p>
</details>"""


def render_html(document: dict, samples: dict[str, np.ndarray]) -> str:
    reading, sets = document["reading"], document["sets"]
    height, width = reading["size"]
    counts = ", ".join(
        f"{name} {sets[name]['count']}"
        for name in ("real", "synthetic", "refined")
        if sets.get(name)
    )
    title = f"{_set_name(sets, 'synthetic')} vs {_set_name(sets, 'real')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{attr(title)}: refinekit gap report</title>
<style>{STYLE}</style></head><body>
<h1>Synthetic-to-real gap: {attr(title)}</h1>
<p class="sub">refinekit gap report; {attr(height)}x{attr(width)} {attr(reading["mode"])};
images: {attr(counts)}</p>
{_verdict(document["verdict"])}
<h2>Metrics</h2>
{_table(document)}
<h2>Samples</h2>
{_grids(samples)}
{_retention(document, samples)}
{split_section(document)}
<h2>Spectra and histograms</h2>
{_charts(document)}
{_method(document)}
</body></html>
"""


def write_html(path: Path, report) -> None:
    from .report_json import write_report

    write_report("--html", Path(path), render_html(report.document, report.samples))
