"""The stand-in tools: virtual-time latency, sized results, LATS selection."""

from __future__ import annotations

import anyio
from trio.testing import MockClock

from taskloom.bench.workloads.sim_tools import lats_select, simulated_call, workload_tools


def test_simulated_call_takes_its_latency_on_virtual_time() -> None:
    async def main() -> tuple[float, str]:
        start = anyio.current_time()
        result = await simulated_call("cd", 2.5, 4)
        return anyio.current_time() - start, result

    elapsed, result = anyio.run(main, backend="trio",
                                backend_options={"clock": MockClock(autojump_threshold=0)})
    assert elapsed == 2.5
    assert result == "cd returned: ok ok ok ok"


def test_lats_select_keeps_the_best_scored_candidate() -> None:
    chosen = anyio.run(lats_select, ["a", "b", "c"], ["fine. 4/10", "great: 9", "7"])
    assert chosen == "b"


def test_lats_select_falls_back_to_the_first_without_scores() -> None:
    assert anyio.run(lats_select, ["a", "b"], ["tok tok", "tok"]) == "a"


def test_the_workload_registry_offers_both_tools() -> None:
    assert workload_tools().names() == ["lats_select", "simulated_call"]
