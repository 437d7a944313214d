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

The first line says what matters most, caveats included: an "improved" whose refined images a
domain classifier still tells from real (held-out accuracy at least SEPARABLE), or whose
train-on-refined accuracy is no better than train-on-synthetic, says so there (and the caveats
are listed in `caveats`); a gap closed that rounds to 100% while the refined set is still
significantly above the real-vs-real floor is called "still above the floor". Metrics that do
not apply (colour on a grayscale set) are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .formatting import NEARLY_CLOSED, estimate, pct
from .summary import Row

OUTCOMES = ("improved", "mixed", "no significant change", "worse", "no gap")
SEPARABLE = 0.9  # domain classifier accuracy on refined vs real that still tells them apart


@dataclass(frozen=True)
class Verdict:
    outcome: str | None
    lines: list[str]
    caveats: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def as_dict(self) -> dict:
        return {
            "outcome": self.outcome,
            "headline": self.lines[0],
            "lines": list(self.lines),
            "caveats": list(self.caveats),
        }


def with_line(verdict: Verdict, line: str | None) -> Verdict:
    """The verdict with one more line at the end (the gap split's), or as it is for None."""
    if line is None:
        return verdict
    return Verdict(verdict.outcome, [*verdict.lines, line], list(verdict.caveats))


def _pct(v: float) -> str:
    return pct(v)


def _still_above(row: Row) -> bool:
    return (
        row.gap_closed is not None
        and row.residual is not None
        and row.gap_closed.value >= NEARLY_CLOSED
        and row.residual.low > 0
    )


def _closed(row: Row) -> str:
    """' (closed 40% of the headline gap)', or that it is still above the floor."""
    if row.gap_closed is None:
        return ""
    if _still_above(row):
        return " (nearly all of the headline gap closed, but still above the real-vs-real floor)"
    return f" (closed {_pct(row.gap_closed.value)} of the headline gap)"


def _caveats(by_key: dict[str, Row]) -> list[str]:
    """What tempers a move towards real: still separable, or no more useful for training."""
    out = []
    domain = by_key.get("classifier_accuracy")
    if domain is not None and domain.refined is not None and domain.refined.value >= SEPARABLE:
        out.append(
            "a domain classifier still tells refined from real images apart "
            f"({_pct(domain.refined.value)} accuracy; 50% = chance)"
        )
    tor = by_key.get("train_on_x_accuracy")
    if tor is not None and tor.refined is not None and tor.outcome == "no significant change":
        out.append(
            f"a classifier trained on refined images is no better on real ones ({_versus(tor)} "
            "trained on synthetic)"
        )
    return out


def _interval(e, percent: bool = False) -> str:
    """The one number format (formatting.estimate) of an Estimate."""
    return estimate({"value": e.value, "low": e.low, "high": e.high}, percent=percent)


def _signed(e) -> str:
    """A change in accuracy as signed percentages, '+5% [+1%, +9%]'."""
    parts = [("+" if v > 0 else "") + pct(v) for v in (e.value, e.low, e.high)]
    return parts[0] if parts[0] == parts[1] == parts[2] else f"{parts[0]} [{parts[1]}, {parts[2]}]"


def _versus(row: Row | None) -> str:
    """'78% vs 100%': train-on-refined vs train-on-synthetic accuracy."""
    assert row is not None and row.refined is not None
    return f"{pct(row.refined.value)} vs {pct(row.synthetic.value)}"


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
    caveats = _caveats(by_key)
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
        first = "Refinement made the synthetic images significantly more real" + _closed(head)
        if caveats:
            first += ", but " + " and ".join(caveats)
        elif retention is not None and retention.refined is not None:
            first += f", and labels were kept ({_pct(retention.refined.value)} retention)"
    elif direction > 0:
        outcome = "mixed"
        first = "Looks more real, but " + " and ".join(problems + caveats[:1])
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
    lines = [first + "."] + _detail_lines(head, retention, tor, rows)
    return Verdict(outcome, lines, caveats if outcome == "improved" else [])


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
        if _still_above(head):
            assert head.residual is not None
            text += (
                f"; {sig} change, still above the floor (refined minus floor "
                f"{_interval(head.residual)})"
            )
        else:
            text += f"; gap closed {_interval(g, percent=True)} ({sig})"
    lines.append(text + ".")
    if retention is not None and retention.refined is not None:
        d = retention.details.get("refined", {})
        r = retention.refined
        text = (
            f"Label retention {_interval(r, percent=True)} of "
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
            f" trained on synthetic (change {_signed(c)}, "
            f"{'significant' if tor.significant else 'not significant'})."
        )
    counted = [row for row in rows if row.applies]
    improved = sum(row.outcome == "improved" for row in counted)
    worse = sum(row.outcome == "worse" for row in counted)
    lines.append(
        f"{improved} of {len(counted)} metrics improved significantly, {worse} got significantly "
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
            f"; a domain classifier tells them apart with {pct(acc.synthetic.value)} held-out "
            "accuracy"
        )
    return [first + "."]
