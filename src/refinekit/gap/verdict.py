"""The verdict: one outcome and a few lines, the first saying in plain words what happened.

Outcome (with a refined set; None without one):

- "no gap": the synthetic set is not significantly further from real than the real floor on
  the headline distance, so there is nothing to close (and labels and train-on-refined are
  not hurt, else "worse");
- "improved": the headline moved significantly towards real, the labels were kept (label
  retention relative to its ceiling has its interval above 0.95, where measurable) and
  train-on-refined, test-on-real accuracy is not significantly worse than train-on-synthetic;
- "mixed": the headline and the label/usefulness checks disagree (more real but labels lost
  or train-on-refined worse; less real but train-on-refined significantly better);
- "worse": the headline moved significantly away from real, or it did not move (or there was
  no gap) and labels were lost or train-on-refined got significantly worse;
- "no significant change": none of the above.
"""

from __future__ import annotations

from dataclasses import dataclass

from .summary import Row

OUTCOMES = ("improved", "mixed", "no significant change", "worse", "no gap")


@dataclass(frozen=True)
class Verdict:
    outcome: str | None
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def as_dict(self) -> dict:
        return {"outcome": self.outcome, "headline": self.lines[0], "lines": list(self.lines)}


def _pct(v: float) -> str:
    return f"{v:.0%}"


def _interval(row_estimate) -> str:
    e = row_estimate
    return f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}]"


def _versus(row: Row | None) -> str:
    """'78% vs 100%': train-on-refined vs train-on-synthetic accuracy."""
    assert row is not None and row.refined is not None
    return f"{row.refined.value:.0%} vs {row.synthetic.value:.0%}"


def _problems(retention: Row | None, tor: Row | None) -> tuple[list[str], bool, bool]:
    """Plain-word problems (labels lost, train-on-refined worse) and whether each happened."""
    problems = []
    lost = False
    if retention is not None and retention.refined is not None:
        d = retention.details.get("refined", {})
        if d.get("measurable") and not d.get("kept"):
            lost = True
            changed = max(0.0, 1.0 - d["relative"]["value"])
            problems.append(f"{_pct(changed)} of refined images changed class")
    tor_worse = tor is not None and tor.outcome == "worse"
    if tor_worse:
        problems.append(
            "a classifier trained on refined images does significantly worse on real ones "
            f"({_versus(tor)} trained on synthetic)"
        )
    return problems, lost, tor_worse


def decide(rows: list[Row]) -> Verdict:
    """The outcome and lines from the report rows (the headline row is required)."""
    by_key = {row.spec.key: row for row in rows}
    head = by_key["headline"]
    retention, tor = by_key.get("label_retention"), by_key.get("train_on_x_accuracy")
    gap_sig = head.gap is not None and head.gap.low > 0
    if head.refined is None:
        return Verdict(None, _no_refined_lines(head, by_key, gap_sig))
    problems, lost, tor_worse = _problems(retention, tor)
    tor_better = tor is not None and tor.outcome == "improved"
    assert head.change is not None
    direction = 0
    if head.significant:
        direction = 1 if head.change.value > 0 else -1
    if not gap_sig:
        # Nothing to close; lost labels or a worse train-on-refined still make it worse.
        outcome = "worse" if problems else "no gap"
        first = "No significant synthetic-to-real gap on the headline distance: nothing to close"
        if problems:
            first += ", but " + " and ".join(problems)
    elif direction > 0 and not problems:
        outcome = "improved"
        first = "Refinement made the synthetic images significantly more real"
        if head.gap_closed is not None:
            first += f" (closed {_pct(head.gap_closed.value)} of the headline gap)"
        if retention is not None and retention.refined is not None:
            first += f", and labels were kept ({_pct(retention.refined.value)} retention)"
    elif direction > 0:
        outcome = "mixed"
        first = "Looks more real, but " + " and ".join(problems)
    elif direction < 0:
        if tor_better and not lost:
            outcome = "mixed"
            first = (
                "Looks less real, but a classifier trained on refined images does significantly "
                f"better on real ones ({_versus(tor)})"
            )
        else:
            outcome = "worse"
            first = "Refinement made the images look significantly less real"
            if problems:
                first += ", and " + " and ".join(problems)
    elif problems:
        outcome = "worse"
        first = "No significant change in how real the images look, but " + " and ".join(problems)
    elif tor_better:
        outcome = "mixed"
        first = (
            "No significant change in how real the images look, but a classifier trained on "
            f"refined images does significantly better on real ones ({_versus(tor)})"
        )
    else:
        outcome = "no significant change"
        first = "Refinement made no significant change to how real the images look"
    return Verdict(outcome, [first + "."] + _detail_lines(head, retention, tor, rows))


def _detail_lines(head: Row, retention: Row | None, tor: Row | None, rows: list[Row]) -> list:
    assert head.refined is not None
    lines = []
    text = (
        f"Headline distance (0 = real floor): synthetic {_interval(head.synthetic)}, "
        f"refined {_interval(head.refined)}"
    )
    if head.gap_closed is not None:
        g = head.gap_closed
        sig = "significant" if head.significant else "not significant"
        text += f"; gap closed {_pct(g.value)} [{_pct(g.low)}, {_pct(g.high)}] ({sig})"
    lines.append(text + ".")
    if retention is not None and retention.refined is not None:
        d = retention.details.get("refined", {})
        r = retention.refined
        text = (
            f"Label retention {_pct(r.value)} [{_pct(r.low)}, {_pct(r.high)}] of "
            f"{d.get('images', '?')} refined images (classifier ceiling on held-out synthetic "
            f"images {_pct(retention.synthetic.value)})"
        )
        if not d.get("measurable", True):
            text += "; the classifier is too weak to judge retention"
        lines.append(text + ".")
    if tor is not None and tor.refined is not None:
        c = tor.change
        assert c is not None
        lines.append(
            f"Train on refined, test on real: {_versus(tor)}"
            f" trained on synthetic (change {c.value:+.0%} [{c.low:+.0%}, {c.high:+.0%}], "
            f"{'significant' if tor.significant else 'not significant'})."
        )
    improved = sum(row.outcome == "improved" for row in rows)
    worse = sum(row.outcome == "worse" for row in rows)
    lines.append(
        f"{improved} of {len(rows)} metrics improved significantly, {worse} got significantly "
        "worse."
    )
    return lines


def _no_refined_lines(head: Row, by_key: dict, gap_sig: bool) -> list[str]:
    if gap_sig:
        first = (
            f"Synthetic images are significantly further from real than real images are from "
            f"each other (headline distance {_interval(head.synthetic)}; 0 = real floor)"
        )
    else:
        first = (
            f"No significant synthetic-to-real gap (headline distance {_interval(head.synthetic)};"
            " 0 = real floor)"
        )
    acc = by_key.get("classifier_accuracy")
    if acc is not None:
        first += (
            f"; a domain classifier tells them apart with {acc.synthetic.value:.0%} held-out "
            "accuracy"
        )
    return [first + "."]
