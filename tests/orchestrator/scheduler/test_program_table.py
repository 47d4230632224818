"""The program table records service, waiting, critical paths and context engines."""

from __future__ import annotations

import pytest

from taskloom.orchestrator.scheduler.program_table import ProgramTable


def test_finished_calls_add_service_and_extend_critical_paths() -> None:
    table = ProgramTable()
    table.call_started("p")
    table.call_started("p")
    table.call_ended("p", "search/0", "c0", path_start_s=0.0, service_s=3.0)
    table.call_ended("p", "search/1", "c1", path_start_s=0.0, service_s=5.0)
    row = table.snapshot("p")
    assert row.attained_service_s == 8.0  # PLAS sums the threads
    assert row.critical_path_s == 5.0  # ATLAS follows the longest one
    assert dict(row.call_path_end_s) == {"c0": 3.0, "c1": 5.0}
    assert dict(row.thread_critical_path_s) == {"search/0": 3.0, "search/1": 5.0}
    assert table.get("p").live_calls == 0 and table.get("p").finished_calls == 2


def test_a_threads_path_is_its_longest_finished_call() -> None:
    table = ProgramTable()
    table.call_ended("p", "main", "a", path_start_s=4.0, service_s=1.0)
    table.call_ended("p", "main", "b", path_start_s=0.0, service_s=2.0)
    assert table.snapshot("p").thread_critical_path_s["main"] == 5.0


def test_waiting_and_context_engine() -> None:
    table = ProgramTable()
    table.add_waiting("p", 1.5)
    table.add_waiting("p", 0.5)
    table.placed_on("p", 2, 0.0, _order("p"))
    table.placed_on("q", 2, 0.0, _order("q"))
    table.placed_on("r", 1, 0.0, _order("r"))
    assert table.snapshot("p").waiting_s == 2.0
    assert table.get("p").context_engine == 2
    table.engine_lost(2)
    assert table.get("p").context_engine is None and table.get("q").context_engine is None
    assert table.get("r").context_engine == 1


def _order(program: str, call: str = "c", arrival: float = 0.0) -> tuple[float, str, str, str]:
    return (arrival, program, "main", call)


@pytest.mark.parametrize("first, second", [("a", "b"), ("b", "a")])
def test_placements_at_one_instant_give_the_same_home_in_either_order(
    first: str, second: str
) -> None:
    table, engine_of = ProgramTable(), {"a": 0, "b": 1}
    for call in (first, second):
        table.placed_on("p", engine_of[call], 5.0, _order("p", call))
    assert table.get("p").context_engine == 1  # call b, last by tie-break, wins
    table.placed_on("p", 0, 6.0, _order("p", "a"))  # a later instant always moves it
    assert table.get("p").context_engine == 0


def test_a_lost_engine_lets_the_same_instant_place_the_context_again() -> None:
    table = ProgramTable()
    table.placed_on("p", 1, 5.0, _order("p", "b"))
    table.engine_lost(1)
    table.placed_on("p", 0, 5.0, _order("p", "a"))
    assert table.get("p").context_engine == 0


def test_snapshots_are_read_only_and_rows_can_be_forgotten() -> None:
    table = ProgramTable()
    table.call_ended("p", "main", "a", path_start_s=0.0, service_s=1.0)
    row = table.snapshot("p")
    with pytest.raises(TypeError):
        row.call_path_end_s["x"] = 1.0  # type: ignore[index]
    assert "p" in table and len(table) == 1
    table.forget("p")
    assert "p" not in table and table.programs() == []
