"""Domain-gap metrics: how far synthetic images are from real ones, and how much of that gap
refinement closed (`refinekit gap-report`).

Library use::

    from refinekit.gap import gap_report
    report = gap_report("real/", "synthetic/", refined="refined/", json_path="gap.json")
    print(report.verdict)
"""

from .run import GapReport, gap_report

__all__ = ["GapReport", "gap_report"]
