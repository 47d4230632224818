"""Writes a run's Gantt chart in the format its file name asks for."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskloom.gantt.image import draw_image
from taskloom.gantt.page import gantt_page
from taskloom.gantt.rows import gantt_chart
from taskloom.orchestrator.draw import UnknownFormat

FORMATS = (".png", ".svg", ".html")


def write_gantt(run: Mapping[str, Any], path: Path) -> None:
    """Draw the run (its JSON object) to `path`: .png, .svg or .html."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise UnknownFormat(f"cannot write '{path.name}': use .png, .svg or .html")
    chart = gantt_chart(run)
    if suffix == ".html":
        path.write_text(gantt_page(chart), encoding="utf-8")
    else:
        draw_image(chart, path)
