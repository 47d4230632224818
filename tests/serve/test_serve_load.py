"""`benchmarks/serve_load.py`, small: a real `taskloom serve --backend sim` takes mixed
programs from concurrent clients, loses none, and reports what the issue asks for."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

from taskloom.bench.workloads import build_workload
from taskloom.program.load import loads

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_load", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_a_few_mixed_programs_from_concurrent_clients_all_finish(tmp_path: Path) -> None:
    output = tmp_path / "load.json"
    code = _benchmark().main(["--runs", "6", "--clients", "3", "--sim-speed", "20",
                              "--rate", "2", "--mode", "shared", "--timeout", "300",
                              "-o", str(output)])
    figures = json.loads(output.read_text())
    assert code == 0
    assert figures["lost"] == 0
    (shared,) = figures["rounds"]
    assert shared["final_status"] == {"succeeded": 6}
    assert shared["submit_errors"] == 0
    assert set(figures["program_latency_s"]) == {"fcfs", "plas"}
    for policy in ("fcfs", "plas"):
        latency = figures["program_latency_s"][policy]
        assert latency["n"] == 3 and 0 < latency["p50"] <= latency["p99"]
        assert figures["virtual_time_reference"][policy]["programs"] == 6  # all, alone
    # Every call of every run went through its policy's one scheduler.
    assert set(shared["scheduler_calls_finished"]) == {"fcfs", "plas"}
    assert sum(shared["scheduler_calls_finished"].values()) == shared["llm_calls_in_programs"]
    assert 0 < figures["submit_latency_s"]["p50"] <= figures["submit_latency_s"]["p99"]
    assert figures["server_peak_rss_mib"] > 10
    assert "one scheduler per policy" in figures["schedulers"]
    assert output.with_suffix(".png").stat().st_size > 0


def test_a_spec_divides_tool_latency_by_the_speed_and_loads_back() -> None:
    module = _benchmark()
    programs = build_workload("mixed", 6, 0).programs
    tool_use = next(p for p in programs if p.kind == "tool-use")
    assert loads(module.spec_text(tool_use, 1.0)) == tool_use.program
    slow = json.loads(module.spec_text(tool_use, 1.0))["nodes"]
    fast = json.loads(module.spec_text(tool_use, 4.0))["nodes"]
    latencies = [(slow[n]["args"]["latency_s"], fast[n]["args"]["latency_s"])
                 for n in slow if slow[n].get("tool") == "simulated_call"]
    assert latencies and all(f == s / 4 for s, f in latencies)
