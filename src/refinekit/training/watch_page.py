"""RUN/index.html: one self-contained page to watch a run (inline SVG, base64 PNG, no URLs,
no script).

Panels over the steps (charts from the gap report's kit, gap/svg.py): discriminator losses,
refiner losses (a loss that was not computed, such as the refiner's adversarial loss during
pretraining, is a gap, not a zero), discriminator accuracy (0-1), the change the refiner makes,
and the validation scores of every checkpoint. Red marks a health warning, green the best
checkpoint, grey the pretraining phases. Every name and value from the run (its folder,
settings, sample file, health codes) is escaped.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

from ..gap import svg
from ..gap.svg import BAD, COLOURS, GOOD, PALETTE, Band, Mark, Series, attr
from . import selection

# metrics.jsonl key -> (legend label, colour); a key absent from a record is a gap there.
DISC_LOSSES = {
    "disc_real": ("on real", COLOURS["real"]),
    "disc_refined": ("on refined", COLOURS["refined"]),
    "disc_history": ("on history buffer", PALETTE[2]),
}
REFINER_ADVERSARIAL = {"refiner_adversarial": ("adversarial", PALETTE[0])}
REFINER_CONTENT = {
    "self_regularisation": ("self-regularisation", PALETTE[1]),
    "label_loss": ("label (cross-entropy)", PALETTE[4]),
}
DISC_ACCURACY = {
    "disc_acc_real": ("on real", COLOURS["real"]),
    "disc_acc_refined": ("on refined", COLOURS["refined"]),
}
CHANGE = {"mean_abs_change": ("mean |R(x) - x|", PALETTE[0])}
# Keys logged as placeholders outside the phases that compute them.
COMPUTED_IN = {"refiner_adversarial": {"adversarial"}}
WIDTH = 560  # pixels per chart: two columns
SETTINGS = ("preset", "refiner", "size", "channels", "steps", "batch_size", "lambda_reg", "seed")


def _read_jsonl(path: Path) -> list[dict]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if isinstance(record, dict) and isinstance(record.get("step"), int | float):
                out.append(record)
    return out


def _read_config(run: Path) -> dict:
    try:
        config = json.loads((run / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _value(record: dict, key: str) -> float | None:
    v = record.get(key)
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return None
    if key in COMPUTED_IN and record.get("phase") not in COMPUTED_IN[key]:
        return None
    return float(v)


def _series(records: list[dict], keys: dict[str, tuple[str, str]], markers=False) -> list:
    return [
        Series(label, [(r["step"], _value(r, key)) for r in records], colour, markers)
        for key, (label, colour) in keys.items()
        if any(_value(r, key) is not None for r in records)
    ]


def _pretraining(config: dict, metrics: list[dict]) -> list[Band]:
    p1, p2 = config.get("pretrain_refiner_steps"), config.get("pretrain_disc_steps")
    if isinstance(p1, int) and isinstance(p2, int):
        end = p1 + p2
    else:
        pre = [
            r["step"] for r in metrics if r.get("phase") in ("pretrain_refiner", "pretrain_disc")
        ]
        end = max(pre, default=0)
    return [Band(0, end, "pretraining")] if end > 0 else []


def _total_steps(config: dict, metrics: list[dict], scores: list[dict]) -> float:
    parts = [config.get(k) for k in ("steps", "pretrain_refiner_steps", "pretrain_disc_steps")]
    planned = sum(p for p in parts if isinstance(p, int)) if parts[0] is not None else 0
    seen = [r["step"] for r in metrics + scores]
    return max([planned, *seen, 1])


def _charts(metrics, scores, config, best_step) -> list[str]:
    x_range = (0.0, float(_total_steps(config, metrics, scores)))
    bands = _pretraining(config, metrics)
    warned = [Mark(r["step"], "health warning", BAD) for r in metrics if r.get("health")]
    best = [Mark(best_step, "best checkpoint", GOOD, strong=True)] if best_step is not None else []

    def panel(series, title: str, y_label: str, marks, y_range=(0.0, None)) -> str:
        return svg.line_chart(
            series,
            title=title,
            x_label="step",
            y_label=y_label,
            x_range=x_range,
            y_range=y_range,
            marks=marks,
            bands=bands,
            width=WIDTH,
        )

    refined = COLOURS["refined"]
    return [
        panel(_series(metrics, DISC_LOSSES), "Discriminator loss", "loss", warned),
        panel(
            _series(metrics, DISC_ACCURACY), "Discriminator accuracy", "accuracy", warned, (0, 1)
        ),
        panel(
            _series(metrics, REFINER_ADVERSARIAL),
            "Refiner adversarial loss (adversarial phase only)",
            "loss",
            warned,
        ),
        panel(_series(metrics, REFINER_CONTENT), "Refiner content losses", "loss", warned),
        panel(
            _series(scores, {"distance": ("held-out refined", refined)}, True),
            "Validation distance per checkpoint (lower is better)",
            "headline distance",
            best,
            None,
        ),
        panel(
            _series(scores, {"retention": ("held-out refined", refined)}, True),
            "Validation label retention per checkpoint",
            "retention",
            best,
            (0, 1),
        ),
        panel(
            _series(metrics, CHANGE),
            "Change made by the refiner",
            "mean |refined - synthetic|",
            warned,
        ),
    ]


def _scores_table(records: list[dict], best: int | None) -> str:
    if not records:
        return "<p>No checkpoint scored yet.</p>"
    rows = [
        "<tr><th>step</th><th>phase</th><th>health</th><th>distance</th><th>retention</th></tr>"
    ]
    for r in records:
        mark = ' class="best"' if r["step"] == best else ""
        if r.get("healthy"):
            health = "ok"
        else:
            codes = r.get("health") or ["unhealthy"]
            health = f'<span class="warn">{attr(", ".join(map(str, codes)))}</span>'
        dist = _number(r.get("distance"), "{:.4g}")
        ret = _number(r.get("retention"), "{:.3f}")
        star = " &#9733; best" if r["step"] == best else ""
        rows.append(
            f"<tr{mark}><td>{attr(r['step'])}{star}</td><td>{attr(r.get('phase', ''))}</td>"
            f"<td>{health}</td><td>{dist}</td><td>{ret}</td></tr>"
        )
    return "<table>" + "".join(rows) + "</table>"


def _number(v, fmt: str) -> str:
    return fmt.format(v) if isinstance(v, int | float) and not isinstance(v, bool) else ""


def _settings(config: dict) -> str:
    if not config:
        return ""
    rows = "".join(
        f"<tr><td>{attr(k)}</td><td>{attr(json.dumps(v))}</td></tr>" for k, v in config.items()
    )
    short = ", ".join(f"{k} {attr(json.dumps(config[k]))}" for k in SETTINGS if k in config)
    return (
        f"<details><summary>Settings ({short})</summary>"
        f'<table class="settings">{rows}</table></details>'
    )


STYLE = """
body { font-family: sans-serif; margin: 16px 24px; max-width: 1180px; color: #222; }
h1 { margin-bottom: 2px; } p.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
table.settings td { text-align: left; }
tr.best td { background: #e3f2ea; font-weight: bold; }
.warn { color: #c62828; } .good { color: #1b7e57; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, 560px); gap: 8px 12px; }
img { image-rendering: pixelated; max-width: 100%; }
"""


def render(run: Path, scores: list[dict], sample: Path | None) -> str:
    run = Path(run)
    metrics = _read_jsonl(run / "metrics.jsonl")
    config = _read_config(run)
    best = selection.choose_best(scores)
    warned = [r for r in metrics if r.get("health")]
    warning_items = "".join(
        f"<li>step {attr(r['step'])}: {attr(', '.join(map(str, r['health'])))}</li>"
        for r in warned[-50:]
    )
    last = metrics[-1] if metrics else {"step": 0, "phase": "not started"}
    total = _total_steps(config, metrics, scores)
    if best.step is not None:
        best_text = (
            f'<span class="good">best checkpoint: step {attr(best.step)}</span>: '
            f"{attr(best.reason)}"
        )
        if best.warning:
            best_text += f'<br><b class="warn">warning:</b> {attr(best.warning)}'
        camera = next(
            (r["camera"] for r in scores if r.get("step") == best.step and "camera" in r), None
        )
        if isinstance(camera, dict):  # what a camera-model refiner learned (docs/refiners.md)
            from ..refiners.acquisition import summary_line

            try:
                best_text += f"<br>fitted camera: {attr(summary_line(camera))}"
            except (KeyError, TypeError, ValueError):
                pass  # a damaged record: the page still renders
    else:
        best_text = f"no best checkpoint yet: {attr(best.reason)}"
    image = ""
    if sample is not None and Path(sample).exists():
        data = base64.b64encode(Path(sample).read_bytes()).decode()
        image = (
            f"<h2>Latest samples ({attr(Path(sample).name)})</h2><p>rows: synthetic, "
            'refined (EMA weights), difference, real</p><img alt="latest samples" '
            f'src="data:image/png;base64,{data}">'
        )
    charts = "".join(f"<div>{c}</div>" for c in _charts(metrics, scores, config, best.step))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{attr(run.name)}: refinekit training run</title>
<style>{STYLE}</style></head>
<body><h1>{attr(run.name)}</h1>
<p class="sub">refinekit training run in {attr(run)}; step {attr(last["step"])} of
{attr(int(total))} ({attr(str(last.get("phase", "")).replace("_", " "))})</p>
<p>{best_text}.</p>
<p>Grey background: pretraining; red lines: log intervals with a health warning; green dashed
line: the best checkpoint.</p>
<div class="charts">{charts}</div>
<h2>Health warnings</h2>
{f'<ul class="warn">{warning_items}</ul>' if warning_items else "<p>none</p>"}
<h2>Validation scores per checkpoint</h2>
<p>distance: the gap report's headline distance, held-out refined synthetic vs held-out real
(lower is better); retention: held-out refined images that keep their class.</p>
{_scores_table(scores, best.step)}
{image}
{_settings(config)}
</body></html>
"""
