"""What the gap split's numbers mean for a user: one line of advice per part, the verdict's
line and the terminal's lines. Text only (no JAX), from the JSON section split.py makes."""

from __future__ import annotations

import shlex

LARGE = 0.05  # accuracy points: a part this large (and significant) is worth acting on
NAMES = {
    "total": "total gap",
    "distribution": "content mix (distribution)",
    "refinement": "refinement",
    "remaining": "remaining (labels and the rest)",
}


def signed(value: float) -> str:
    """An accuracy difference in points with one decimal ('+5.5%', '-2.3%', '0.0%'), so the
    parts shown add up to the total shown within a rounding step."""
    text = f"{value * 100:+.1f}%"
    return "0.0%" if text in ("+0.0%", "-0.0%") else text


def interval(part: dict) -> str:
    """'+12% [+5%, +19%]' (the interval left out when it rounds to the value)."""
    texts = [signed(part[k]) for k in ("value", "low", "high")]
    return texts[0] if texts[0] == texts[1] == texts[2] else f"{texts[0]} [{texts[1]}, {texts[2]}]"


def _sign(part: dict) -> int:
    """+1 / -1 when the interval excludes 0 on that side, else 0."""
    if part["low"] > 0:
        return 1
    if part["high"] < 0:
        return -1
    return 0


def advice(part: dict, synthetic: str | None = None, real: str | None = None) -> str:
    """One line: what to do about this part (and, for a fix whose two orders disagree by
    LARGE or more, what it adds alone and after the other)."""
    text = _advice(part, synthetic, real)
    if part.get("measured") and "alone" in part:
        alone, after = part["alone"], part["after_the_other"]
        if abs(alone - after) >= LARGE:
            text += (
                f" It adds {signed(alone)} alone and {signed(after)} after the other fix: "
                "the two interact."
            )
    return text


def _advice(part: dict, synthetic: str | None, real: str | None) -> str:
    key = part["key"]
    if not part["measured"]:
        if key == "refinement":
            return "Pass --refined DIR or --run RUN to measure what refinement adds."
        return "Not measured."
    sign, large = _sign(part), part["value"] >= LARGE
    if key == "total":
        if sign > 0:
            return (
                f"A classifier trained on synthetic images scores {signed(part['value'])[1:]} less on "
                "real images than one trained on as many real images."
            )
        if sign < 0:
            return "Synthetic images train a better classifier than as many real images."
        return "No significant gap for a classifier: synthetic images train as well as real ones."
    if key == "distribution":
        if sign > 0 and large:
            command = "refinekit resample --synthetic {} --real {} --out weights.json".format(
                shlex.quote(synthetic or "SYN"), shlex.quote(real or "REAL")
            )
            return f"The content mix costs accuracy: resample the synthetic set: {command}"
        if sign > 0:
            return "Resampling the synthetic set helps a little: refinekit resample."
        if sign < 0:
            return "Resampling hurt (the real mix is estimated from few images): do not resample."
        return "The content mix is not what costs accuracy: resampling would not help."
    if key == "refinement":
        if sign > 0:
            return "Refinement helped a classifier beyond resampling: keep it."
        if sign < 0:
            return "Refinement hurt a classifier on real images: check label retention and the run."
        return "Refinement did not help a classifier here."
    if sign > 0 and large:
        return (
            "Neither the content mix nor the look explains this: check that the synthetic labels "
            "follow the real label conventions (what each class means, borderline cases), then "
            "poses, backgrounds and objects the synthetic set lacks."
        )
    if sign > 0:
        return "A little remains that neither the content mix nor the look explains."
    if sign < 0:
        return "The fixed synthetic set trains better than as many real images."
    return "Nothing significant remains."


def not_measured(reason: str, has_refined: bool) -> dict:
    """The section when no part can be measured: which parts, and why."""
    parts = [{"part": key, "reason": reason} for key in NAMES]
    if not has_refined:
        parts[2] = {
            "part": "refinement",
            "reason": reason + "; and no refined set: pass --refined DIR or --run RUN",
        }
    return {"measured": False, "reason": reason, "parts": [], "not_measured": parts}


def verdict_line(section: dict) -> str | None:
    """'Gap for a classifier on real images: ... = content mix ..., refinement ..., ...'."""
    if not section.get("measured"):
        return None
    by_key = {p["key"]: p for p in section["parts"]}
    pieces = [
        f"{short} {interval(by_key[key])}" if by_key[key]["measured"] else f"{short} not measured"
        for key, short in (
            ("distribution", "content mix"),
            ("refinement", "refinement"),
            ("remaining", "remaining"),
        )
    ]
    return (
        f"Gap for a classifier on real images: {interval(by_key['total'])} = "
        + ", ".join(pieces)
        + "."
    )


def lines(section: dict | None) -> list[str]:
    """The split for the terminal: a line per part with its advice, or why it is missing."""
    if not section:
        return []
    if not section["measured"]:
        return [f"Gap split not measured: {section['reason']}."]
    out = ["Gap split (accuracy on held-out real images; parts add up to the total):"]
    if section.get("caution"):
        out.append(f"  Caution: {section['caution']}.")
    for part in section["parts"]:
        value = interval(part) if part["measured"] else "not measured"
        out.append(f"  {part['name']}: {value}. {part['advice']}")
    return out
