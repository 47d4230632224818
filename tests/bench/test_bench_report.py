"""results.json, the latency-versus-rate plot and the table."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from taskloom.bench.metrics import BenchPoint, BenchRow, EngineReport, ProgramOutcome, summarize
from taskloom.bench.report import (
    plot_latency_vs_rate,
    print_results,
    read_results,
    write_results,
)


def rows() -> list[BenchRow]:
    made: list[BenchRow] = []
    for policy in ("fcfs", "plas"):
        for rate in (1.0, 2.0):
            outcomes = [ProgramOutcome(0, "chat", 0.0, rate * 2, True, 10, 50, 0, 1)]
            made.append(summarize(BenchPoint("chat", policy, rate, "sim", 1, 0), outcomes,
                                  EngineReport(0.5, 0, 10)))
    return made


def test_results_json_round_trips(tmp_path: Path) -> None:
    path = write_results(rows(), tmp_path / "out")
    assert path == tmp_path / "out" / "results.json"
    assert read_results(path) == rows()


def test_the_plot_is_a_png(tmp_path: Path) -> None:
    path = plot_latency_vs_rate(rows(), tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_table_has_a_line_per_point() -> None:
    console = Console(record=True, width=120)
    print_results(rows(), console)
    text = console.export_text()
    assert text.count("fcfs") == 2 and text.count("plas") == 2
    assert text.count("50%") == 4  # the busy fraction
