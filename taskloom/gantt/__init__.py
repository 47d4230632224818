"""Pictures of a run: its nodes on a timeline, plan tasks under their plan node,
coloured by status, as PNG or SVG (matplotlib) or one self-contained HTML file."""

from taskloom.gantt.image import draw_image
from taskloom.gantt.page import gantt_page
from taskloom.gantt.rows import STATUS_COLOURS, GanttChart, GanttRow, gantt_chart
from taskloom.gantt.write import write_gantt

__all__ = [
    "STATUS_COLOURS",
    "GanttChart",
    "GanttRow",
    "draw_image",
    "gantt_chart",
    "gantt_page",
    "write_gantt",
]
