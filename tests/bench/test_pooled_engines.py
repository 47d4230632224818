"""`taskloom bench --engine URL ...`: a benchmark on a pool of engines. The pool's
engines here are the scripted test double (runner) and small OpenAI-compatible servers
the tests start (CLI); the real vLLM server is in test_bench_engines_server.py."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import anyio
import pytest
from fake_openai_server import FakeOpenAIServer
from health_switch import Switch
from trio.testing import MockClock
from typer.testing import CliRunner

from taskloom.backends.base import GenerateRequest
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.health import HealthSettings
from taskloom.backends.scripted import ScriptedBackend
from taskloom.bench.metrics import BenchRow
from taskloom.bench.pooled_engines import PooledEngines
from taskloom.bench.runner import BenchConfig, BenchUsageError, run_points, validate_config
from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.cli import app

CHECKS = HealthSettings(interval_s=1.0, timeout_s=0.5)
OPTIONS = WorkloadOptions(max_context_tokens=256, max_output_tokens=6)
CONFIG = BenchConfig(workload="chat", policies=("fcfs", "plas"), rates=(2.0,), programs=6,
                     seed=3, backend="openai", engine_urls=("a", "b"), options=OPTIONS)
runner = CliRunner()


def answer(request: GenerateRequest) -> str:
    return "one two three four five six"


def run_on_pool(engines: list[ScriptedBackend]) -> list[BenchRow]:
    workload = build_workload("chat", CONFIG.programs, seed=CONFIG.seed, options=OPTIONS)

    async def main() -> list[BenchRow]:
        async with EnginePool(engines, names=["a", "b"], probes=[Switch(), Switch()],
                              health=CHECKS) as pool:
            return await run_points(CONFIG, workload, PooledEngines(pool), lambda _: None)

    rows: list[BenchRow] = anyio.run(main, backend="trio",
                                     backend_options={"clock": MockClock(autojump_threshold=0)})
    return rows


def test_each_point_reports_the_calls_each_engine_finished() -> None:
    rows = run_on_pool([ScriptedBackend(respond=answer, per_chunk_s=0.5) for _ in range(2)])
    assert [row.policy for row in rows] == ["fcfs", "plas"]
    for row in rows:
        assert row.failed_programs == 0 and row.engine_names == ("a", "b")
        assert row.calls_per_engine is not None
        # Counted per point: the second point's counts do not include the first's.
        assert sum(row.calls_per_engine) == row.llm_calls > 0
        assert row.failed_attempts_per_engine == (0, 0)
        assert BenchRow.from_json(json.loads(json.dumps(row.to_json()))) == row


def test_calls_on_an_engine_that_breaks_are_resumed_on_the_other() -> None:
    breaking = ScriptedBackend(respond=answer, per_chunk_s=0.5, fail_after_chunks=2)
    rows = run_on_pool([breaking, ScriptedBackend(respond=answer, per_chunk_s=0.5)])
    for row in rows:
        assert row.failed_programs == 0  # every call finished somewhere
        assert row.failed_attempts_per_engine is not None
        assert row.calls_per_engine is not None
        assert row.failed_attempts_per_engine[0] >= 1 and row.calls_per_engine[1] >= 1
        assert sum(row.calls_per_engine) == row.llm_calls


@pytest.mark.parametrize(("change", "message"), [
    ({"backend": "sim"}, "--backend sim has none"),
    ({"base_url": "http://x"}, "do not mix"),
    ({"engines": 2}, "--engines N counts simulated engines"),
])
def test_engine_urls_refuse_settings_that_contradict_them(
    change: dict[str, object], message: str
) -> None:
    config = BenchConfig(**{**CONFIG.__dict__, **change})  # type: ignore[arg-type]
    with pytest.raises(BenchUsageError, match=message):
        validate_config(config)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def bench(tmp_path: Path, *args: str) -> tuple[int, str]:
    done = runner.invoke(app, ["bench", "run", "chat", "--programs", "4", "--rate", "4",
                               "--max-context-tokens", "256", "--max-output-tokens", "6",
                               "--no-progress", "-o", str(tmp_path / "out"), *args])
    return done.exit_code, done.stdout + done.stderr


def test_the_cli_runs_a_benchmark_on_two_servers_and_writes_each_ones_calls(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        code, output = bench(tmp_path, "--engine", one.url, "--engine", two.url)
    assert code == 0, output
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["backend"] == "openai" and row["engine_names"] == [one.url, two.url]
    assert row["calls_per_engine"] == [one.answered, two.answered]
    assert sum(row["calls_per_engine"]) == row["llm_calls"] and row["failed_programs"] == 0
    assert f"{one.url} {one.answered} calls" in output


def test_the_cli_leaves_out_an_engine_that_is_down_and_refuses_contradictions(
    tmp_path: Path,
) -> None:
    down = closed_port_url()
    with FakeOpenAIServer() as one:
        code, output = bench(tmp_path, "--engine", one.url, "--engine", down)
    assert code == 0, output
    (row,) = json.loads((tmp_path / "out" / "results.json").read_text())
    assert row["calls_per_engine"] == [row["llm_calls"], 0]
    for extra, message in [(["--backend", "sim"], "--backend sim has none"),
                           (["--engines", "1,2"], "scale-out study"),
                           (["--base-url", down], "do not mix")]:
        code, output = bench(tmp_path, "--engine", down, *extra)
        assert code == 2 and message in output, output
    code, output = bench(tmp_path, "--engine", down)
    assert code == 4 and "no engine answers" in output, output
