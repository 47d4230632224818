"""The Gantt chart as one self-contained HTML file: an inline SVG (a tooltip on every
bar), the legend and a table of the nodes, with its CSS inline. It loads nothing from
anywhere, so it can be mailed or attached as it is."""

from __future__ import annotations

import math
from html import escape

from taskloom.gantt.rows import STATUS_COLOURS, GanttChart, GanttRow

LABEL_WIDTH = 230
PLOT_WIDTH = 760
ROW_HEIGHT = 22
AXIS_HEIGHT = 28

CSS = """
body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d2733; }
h1 { font-size: 18px; margin: 0 0 12px; }
.legend span { display: inline-block; margin-right: 14px; }
.legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px;
            vertical-align: -1px; border-radius: 2px; }
svg { display: block; margin: 12px 0 20px; }
svg text { font-size: 12px; fill: #1d2733; }
svg text.task { fill: #5b6670; }
svg .grid { stroke: #e4e7eb; }
svg rect.bar:hover { stroke: #1d2733; stroke-width: 1.5; }
table { border-collapse: collapse; font-size: 13px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e7eb; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.task td:first-child { padding-left: 28px; color: #5b6670; }
"""


def gantt_page(chart: GanttChart) -> str:
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{status}</span>'
        for status, colour in STATUS_COLOURS.items()
        if any(row.status == status for row in chart.rows)
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{escape(chart.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        f"<h1>{escape(chart.title)}</h1>\n<div class=\"legend\">{legend}</div>\n"
        f"{_svg(chart)}\n{_table(chart)}\n</body>\n</html>\n"
    )


def _svg(chart: GanttChart) -> str:
    width = LABEL_WIDTH + PLOT_WIDTH + 20
    height = AXIS_HEIGHT + ROW_HEIGHT * len(chart.rows) + 8
    scale = PLOT_WIDTH / chart.end_s if chart.end_s > 0 else 0.0
    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'role="img" aria-label="{escape(chart.title)}">']
    for tick in _ticks(chart.end_s):
        x = LABEL_WIDTH + tick * scale
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{AXIS_HEIGHT - 6}" x2="{x:.1f}" '
                     f'y2="{height}"/><text x="{x:.1f}" y="{AXIS_HEIGHT - 10}" '
                     f'text-anchor="middle">{tick:g} s</text>')
    for index, row in enumerate(chart.rows):
        y = AXIS_HEIGHT + index * ROW_HEIGHT
        indent = 8 + 18 * row.depth
        css = ' class="task"' if row.depth else ""
        parts.append(f'<text{css} x="{indent}" y="{y + 15}">{escape(row.label)}</text>')
    for row, start, end in chart.bars():
        y = AXIS_HEIGHT + chart.rows.index(row) * ROW_HEIGHT + (5 if row.depth else 3)
        bar_height = ROW_HEIGHT - (10 if row.depth else 6)
        x = LABEL_WIDTH + start * scale
        bar_width = max((end - start) * scale, 2.0)
        parts.append(
            f'<rect class="bar" data-node="{escape(row.node_id)}" x="{x:.1f}" y="{y}" '
            f'width="{bar_width:.1f}" height="{bar_height}" rx="2" fill="{row.colour}">'
            f"<title>{escape(_tooltip(row, start, end))}</title></rect>"
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _tooltip(row: GanttRow, start: float, end: float) -> str:
    text = f"{row.node_id} ({row.kind}): {row.status}, {start:.3f}–{end:.3f} s"
    text += f" ({end - start:.3f} s)"
    if row.tokens:
        text += f", {row.tokens} tokens"
    return text + (f"\n{row.error}" if row.error else "")


def _table(chart: GanttChart) -> str:
    lines = ["<table>", "<tr><th>node</th><th>kind</th><th>status</th><th>start s</th>"
             "<th>duration s</th><th>tokens</th><th>error</th></tr>"]
    for row in chart.rows:
        span = row.span(chart.end_s)
        start = f"{span[0]:.3f}" if span else ""
        duration = f"{span[1] - span[0]:.3f}" if span else ""
        css = ' class="task"' if row.depth else ""
        lines.append(
            f"<tr{css}><td>{escape(row.label)}</td><td>{escape(row.kind)}</td>"
            f'<td style="color:{row.colour}">{escape(row.status)}</td>'
            f'<td class="num">{start}</td><td class="num">{duration}</td>'
            f'<td class="num">{row.tokens or ""}</td><td>{escape(row.error or "")}</td></tr>'
        )
    lines.append("</table>")
    return "\n".join(lines)


def _ticks(end_s: float, wanted: int = 8) -> list[float]:
    """Round tick values from 0 to `end_s`, about `wanted` of them."""
    if end_s <= 0:
        return [0.0]
    raw = end_s / wanted
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return [round(i * step, 10) for i in range(int(end_s / step) + 1)]
