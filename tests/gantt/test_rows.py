"""Rows of the chart: program nodes by start time, each plan's tasks right under it."""

from __future__ import annotations

from typing import Any

from taskloom.gantt.rows import STATUS_COLOURS, gantt_chart


def test_tasks_follow_their_plan_node_and_nodes_go_by_start(run_json: dict[str, Any]) -> None:
    chart = gantt_chart(run_json)
    assert [(row.node_id, row.depth) for row in chart.rows] == [
        ("cities", 0),
        ("answer", 0),
        ("answer/plan1/1", 1),
        ("answer/plan1/2", 1),
        ("summary", 0),
        ("blocked", 0),  # never started: last, and without a bar
    ]
    assert [row.label for row in chart.rows][2:4] == ["plan1/1", "plan1/2"]
    assert chart.title == "towns · run abc123 · running · 2.00 s"


def test_bars_cover_each_started_node_and_a_running_one_reaches_the_end(
    run_json: dict[str, Any],
) -> None:
    chart = gantt_chart(run_json)
    bars = {row.node_id: (start, end) for row, start, end in chart.bars()}
    assert set(bars) == set(run_json["nodes"]) - {"blocked"}
    assert bars["summary"] == (1.6, 2.0)  # still running: up to the run's wall time
    assert bars["answer/plan1/1"] == (0.2, 0.5)
    by_id = {row.node_id: row for row in chart.rows}
    assert by_id["answer/plan1/1"].colour == STATUS_COLOURS["failed"]
    assert by_id["answer"].tokens == 52


def test_an_empty_run_draws_an_empty_chart() -> None:
    chart = gantt_chart({"run_id": "x", "program": "p", "status": "failed", "nodes": {}})
    assert chart.rows == () and chart.bars() == [] and chart.end_s == 0.0
