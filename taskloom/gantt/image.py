"""The Gantt chart drawn with matplotlib, as PNG or SVG. In the SVG, each bar is a group
whose id is `node:<node id>`, so a page or a test can find it."""

from __future__ import annotations

from pathlib import Path

from taskloom.gantt.rows import STATUS_COLOURS, GanttChart

ROW_INCHES = 0.32


def draw_image(chart: GanttChart, path: Path) -> None:
    # matplotlib takes a second to import; only a picture needs it (show stays fast).
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt  # lazy, as above
    from matplotlib.patches import Patch  # lazy, as above

    rows = chart.rows
    height = max(2.5, 1.4 + ROW_INCHES * len(rows))
    fig, ax = plt.subplots(figsize=(10, height))
    positions = {row.node_id: index for index, row in enumerate(rows)}
    for row, start, end in chart.bars():
        # A bar too short to see still shows as a sliver.
        width = max(end - start, chart.end_s / 400 if chart.end_s else 0.001)
        bars = ax.barh(positions[row.node_id], width, left=start, height=0.6 if row.depth
                       else 0.8, color=row.colour, edgecolor="#33333355", linewidth=0.5)
        bars.patches[0].set_gid(f"node:{row.node_id}")
    ax.set_yticks(range(len(rows)))
    # Tick labels are right-aligned, so a task is marked rather than indented.
    ax.set_yticklabels([f"↳ {row.label}" if row.depth else f"{row.label} ({row.kind})"
                        for row in rows], fontsize=8)
    for label, row in zip(ax.get_yticklabels(), rows, strict=True):
        label.set_color("#555555" if row.depth else "#111111")
    ax.invert_yaxis()  # first node at the top, as a timeline reads
    ax.set_xlim(0, chart.end_s * 1.02 if chart.end_s else 1.0)
    ax.set_xlabel("seconds since the run started")
    ax.set_title(chart.title, fontsize=10)
    ax.grid(axis="x", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    used = {row.status for row in rows}
    handles = [Patch(color=colour, label=status) for status, colour in STATUS_COLOURS.items()
               if status in used]
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.9)
    fig.tight_layout()
    fig.savefig(path, metadata=_no_dates(path))
    plt.close(fig)


def _no_dates(path: Path) -> dict[str, None]:
    # The same run draws the same file: no creation date in it.
    return {"Date": None} if path.suffix.lower() == ".svg" else {}
