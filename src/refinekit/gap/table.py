"""The terminal table of a gap report (rich), built from the JSON document."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from . import formatting


def report_table(document: dict) -> Table:
    """Metric, synthetic vs real, refined vs real, real vs real floor, gap closed; verdict below."""
    reading = document["reading"]
    height, width = reading["size"]
    table = Table(
        title=f"Synthetic-to-real gap ({height}x{width} {reading['mode']}, 95% bootstrap intervals)",
        caption=Text("\n".join(document["verdict"]["lines"])),
        caption_justify="left",
    )
    table.add_column("Metric")
    table.add_column("Better")
    table.add_column("Synthetic vs real", justify="right")
    if document["sets"]["refined"] is not None:
        table.add_column("Refined vs real", justify="right")
    table.add_column("Real vs real (floor)", justify="right")
    if document["sets"]["refined"] is not None:
        table.add_column("Gap closed", justify="right")
    channels = reading.get("channels", 3)
    for metric in document["metrics"]:
        if not formatting.applies(metric, channels):
            continue  # colour metrics on a grayscale comparison
        # Text cells: interval brackets must not be read as rich markup.
        cells = [
            Text(metric["name"]),
            Text(metric["better"]),
            Text(formatting.metric_value(metric, "synthetic")),
        ]
        if document["sets"]["refined"] is not None:
            cells.append(Text(formatting.metric_value(metric, "refined")))
        cells.append(Text(formatting.metric_value(metric, "real_floor")))
        if document["sets"]["refined"] is not None:
            style = {"improved": "green", "worse": "red"}.get(metric["outcome"], "")
            cells.append(Text(formatting.gap_closed_cell(metric), style=style))
        table.add_row(*cells)
    return table
