"""Markdown tables of a harness results.json: one table per case."""

from __future__ import annotations


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _delta(value, base) -> str:
    return "" if value is None or base is None else f" ({100 * (value - base):+.1f})"


def _row(label, entry, base, judges, minutes="", notes="") -> str:
    cells = [label]
    for j in judges:
        cells.append(_pct(entry.get("retention", {}).get(j, {}).get("refined")))
    for j in judges:
        acc = entry["accuracy"][j]
        cells.append(_pct(acc["val"]))
        seeds = acc.get("test_seeds")
        spread = f" [{_pct(min(seeds))}-{_pct(max(seeds))}]" if seeds else ""
        cells.append(_pct(acc["test"]) + _delta(acc["test"], base[j]) + spread)
    return "| " + " | ".join(cells + [minutes, notes]) + " |"


def markdown(results: dict) -> str:
    lines = []
    for case, entry in results["cases"].items():
        base_sets = entry["baseline"]
        judges = list(base_sets["synthetic"]["accuracy"])
        base = {j: base_sets["synthetic"]["accuracy"][j]["test"] for j in judges}
        meta = entry["meta"]
        held = "" if meta.get("tuning", True) else " (held out: report only)"
        lines += [f"### {case}{held}", "", f"Gap: {meta['gap']}.", ""]
        head = ["train on"] + [f"retention {j}" for j in judges]
        for j in judges:
            head += [f"{j} val", f"{j} test (vs syn)"]
        head += ["train min", "health"]
        lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        syn = dict(base_sets["synthetic"])
        syn["retention"] = {
            j: {"refined": r["synthetic"]} for j, r in base_sets["synthetic"]["retention"].items()
        }
        lines.append(_row("synthetic (raw)", syn, base, judges))
        for name, v in entry["variants"].items():
            h = v["health"]
            notes = (
                f"max chg {h['max_mean_abs_change']:.3f}, sat D {h['saturated_d_logs']}"
                if h["max_mean_abs_change"] is not None
                else ""
            )
            if h.get("health_warnings"):
                notes += f", warn {h['health_warnings']}"
            label = f"refined `{name}` @{v['commit']}"
            if v.get("refine_step") is not None:
                label += f" step {v['refine_step']}"
            lines.append(_row(label, v, base, judges, f"{v['train_seconds'] / 60:.1f}", notes))
            if v.get("with_augment"):
                lines.append(_row(f"{label}, then `augment`", v["with_augment"], base, judges))
            for kind, c in (v.get("candidates") or {}).items():
                if c.get("unhealthy"):
                    lines.append(f"|   candidate `{kind}`: no healthy checkpoint |")
                    continue
                picked = "kept" if c["chosen"] else "not kept"
                said = c["auto"]
                notes = (
                    f"downstream {said['downstream']}, distance {said['distance']:.3f}"
                    if (said.get("distance") is not None and said.get("downstream") is not None)
                    else ""
                )
                lines.append(_row(f"  candidate `{kind}` ({picked})", c, base, judges, notes=notes))
        for name in ("histogram", "fda", "camera_grid", "augment"):
            if name in base_sets:
                lines.append(_row(f"training-free `{name}`", base_sets[name], base, judges))
        lines.append(_row("oracle (syn content, real process)", base_sets["oracle"], base, judges))
        for key in ("real", "real50"):
            label = f"real ceiling ({base_sets[key]['images']} labelled)"
            lines.append(_row(label, base_sets[key], base, judges))
        lines.append("")
    lines += [
        "Retention: a judge trained on 4/5 of the synthetic set (each image plus one photometric",
        "variant) classifies the refined versions of the held-out fifth (raw row: the held-out",
        "synthetic images themselves; oracle row: what an ideal appearance-only refiner keeps). Accuracy:",
        "train the judge on that row's set, test on the real val / test splits; (vs syn) is the",
        "gain over raw synthetic in points. Health: largest adversarial mean |R(x)-x| and logged",
        "steps with all three D losses < 0.01.",
        "",
    ]
    return "\n".join(lines)
