"""How much time does taskloom itself add?

1. Dispatch: a 10,000-node DAG of no-op tool nodes (100 levels x 100 wide; each node
   reads two nodes of the level above), run by taskloom and by a hand-written anyio task
   group with no framework, in the same process. Goal: taskloom's per-node time is at
   most 3x the bare lower bound. The DAG runs three ways side by side: tracing off,
   tracing on to the OpenTelemetry SDK's in-memory exporter, and tracing on over
   OTLP/HTTP to a receiver this script starts on a local port; each is a per-node ratio
   against bare anyio. Tracing off must cost nothing (the ratio from before tracing).
2. Batching: a `map` of 16 LLM calls on the embedded vLLM engine against the same 16
   prompts sent straight to the engine at once. Goal: at most 1.3x.

    .venv/bin/python benchmarks/overhead.py -o results/overhead.json [--skip-engine]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend, GenerateRequest, Message, SamplingParams, collect
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.executor import Executor
from taskloom.orchestrator.result import RunStatus
from taskloom.orchestrator.scheduler import FifoScheduler
from taskloom.program.models import LLMNode, MapNode, Program, ToolNode
from taskloom.runtime import Runtime
from taskloom.telemetry import NO_TRACER, Tracer
from taskloom.tools.registry import ToolRegistry, tool

LEVELS = WIDTH = 100


@tool
async def noop(a: int = 0, b: int = 0) -> int:
    """Does nothing but hand back a number.

    Args:
        a: first upstream value.
        b: second upstream value.
    """
    return a + 1


def _name(level: int, column: int) -> str:
    return f"n{level}_{column}"


def _parents(level: int, column: int) -> tuple[str, str]:
    return _name(level - 1, column), _name(level - 1, (column + 1) % WIDTH)


def dag_program() -> Program:
    nodes: dict[str, Any] = {}
    for level in range(LEVELS):
        for column in range(WIDTH):
            args: dict[str, Any] = {}
            if level:
                left, right = _parents(level, column)
                args = {"a": f"{{{{ {left} }}}}", "b": f"{{{{ {right} }}}}"}
            nodes[_name(level, column)] = ToolNode(tool="noop", args=args)
    return Program(name="dispatch-10k", nodes=nodes)


async def bare_anyio_dag() -> float:
    """The lower bound: the same DAG with a countdown per node and nothing else."""
    values: dict[str, int] = {}
    waiting = {_name(lv, c): (2 if lv else 0) for lv in range(LEVELS) for c in range(WIDTH)}
    children: dict[str, list[str]] = {name: [] for name in waiting}
    for level in range(1, LEVELS):
        for column in range(WIDTH):
            for parent in _parents(level, column):
                children[parent].append(_name(level, column))

    async def run(group: Any, name: str, level: int, column: int) -> None:
        if level:
            left, right = _parents(level, column)
            values[name] = await noop.fn(a=values[left], b=values[right])
        else:
            values[name] = await noop.fn()
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                child_level, child_column = (int(x) for x in child[1:].split("_"))
                group.start_soon(run, group, child, child_level, child_column)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for column in range(WIDTH):
            group.start_soon(run, group, _name(0, column), 0, column)
    elapsed = time.perf_counter() - started
    assert values[_name(LEVELS - 1, 0)] == LEVELS
    return elapsed


class _NoEngine:
    """Dispatch needs no LLM; a backend is still required by the runtime's seam."""

    name = "none"

    def capacity(self) -> int:
        return 1

    async def close(self) -> None:
        return None

    async def generate(self, request: GenerateRequest) -> Any:
        raise AssertionError("the dispatch DAG makes no LLM calls")
        yield  # pragma: no cover


async def _timed_run(graph: Any, tools: ToolRegistry, tracer: Tracer) -> float:
    executor = Executor(graph, scheduler=FifoScheduler(_NoEngine()), tools=tools, tracer=tracer)
    started = time.perf_counter()
    result = await executor.run({})
    elapsed = time.perf_counter() - started
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes[_name(LEVELS - 1, 0)].output == LEVELS
    return elapsed


async def dispatch(repeats: int, tracing: bool) -> dict[str, Any]:
    program = dag_program()
    tools = ToolRegistry()
    tools.register(noop)
    compile_times, run_times, bare_times = [], [], []
    traced: dict[str, list[float]] = {"in_memory": [], "otlp": [], "otlp_until_sent": []}
    spans: dict[str, int] = {}
    for _ in range(repeats):
        started = time.perf_counter()
        graph = compile_program(program, tools)
        compile_times.append(time.perf_counter() - started)
        run_times.append(await _timed_run(graph, tools, NO_TRACER))
        bare_times.append(await bare_anyio_dag())
        if tracing:
            spans = await _traced_runs(graph, tools, traced)
    nodes = LEVELS * WIDTH
    run_s, bare_s = statistics.median(run_times), statistics.median(bare_times)
    report: dict[str, Any] = {
        "nodes": nodes,
        "edges": graph.stats.edge_count,
        "levels": graph.stats.levels,
        "repeats": repeats,
        "compile_s": statistics.median(compile_times),
        "taskloom_run_s": run_s,
        "bare_anyio_run_s": bare_s,
        "taskloom_per_node_us": run_s / nodes * 1e6,
        "bare_per_node_us": bare_s / nodes * 1e6,
        "ratio": run_s / bare_s,
        "goal_ratio_at_most": 3.0,
        "all_runs_s": {"taskloom": run_times, "bare": bare_times, **traced},
    }
    if tracing:
        variants = {"off": run_s, **{k: statistics.median(v) for k, v in traced.items()}}
        report["tracing"] = {
            **{
                variant: {"run_s": seconds, "per_node_us": seconds / nodes * 1e6,
                          "ratio": seconds / bare_s}
                for variant, seconds in variants.items()
            },
            "spans_per_run": spans,
        }
    return report


async def _traced_runs(
    graph: Any, tools: ToolRegistry, times: dict[str, list[float]]
) -> dict[str, int]:
    """The DAG traced in memory, then over OTLP/HTTP: `otlp` is the run as its caller
    waits for it (spans leave from a background thread), `otlp_until_sent` until the
    receiver has every span."""
    # Imported here: with --no-tracing the OpenTelemetry SDK is never loaded.
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from taskloom.telemetry.otel import OtelTracer
    from taskloom.telemetry.receiver import OtlpReceiver

    memory = InMemorySpanExporter()
    tracer = OtelTracer.exporting(memory, batch=False)
    times["in_memory"].append(await _timed_run(graph, tools, tracer))
    tracer.close()
    kept = len(memory.get_finished_spans())
    with OtlpReceiver() as receiver:
        tracer = OtelTracer.to_otlp(receiver.endpoint)
        started = time.perf_counter()
        times["otlp"].append(await _timed_run(graph, tools, tracer))
        tracer.close()  # returns once every queued span was posted
        times["otlp_until_sent"].append(time.perf_counter() - started)
        sent = len(receiver.spans())
    return {"in_memory": kept, "otlp_received": sent}


PROMPTS = [f"Write one sentence about the number {i}." for i in range(16)]


def batching_program(max_tokens: int) -> Program:
    return Program(
        name="map-16",
        inputs={"prompts": {"type": "array", "default": PROMPTS}},  # type: ignore[dict-item]
        defaults={"max_tokens": max_tokens, "temperature": 0.0},  # type: ignore[arg-type]
        nodes={
            "each": MapNode(
                over="{{ inputs.prompts }}",
                node=LLMNode(prompt="{{ item }}", max_tokens=max_tokens),
            )
        },
    )


async def direct_batch(backend: Backend, max_tokens: int, tag: str) -> tuple[float, int]:
    generated: list[int] = []

    async def one(index: int, prompt: str) -> None:
        request = GenerateRequest(
            call_id=f"direct-{tag}-{index}",
            messages=(Message("user", prompt),),
            sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
        )
        generated.append((await collect(backend.generate(request))).generated_tokens)

    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for index, prompt in enumerate(PROMPTS):
            group.start_soon(one, index, prompt)
    return time.perf_counter() - started, sum(generated)


async def batching(repeats: int, max_tokens: int) -> dict[str, Any]:
    from taskloom.backends.factory import open_backend

    async with open_backend("vllm") as backend:
        runtime = Runtime(backend, tools=ToolRegistry())
        program = batching_program(max_tokens)
        await direct_batch(backend, max_tokens, "warmup")  # first calls pay one-off costs
        mapped, direct, mapped_tokens, direct_tokens = [], [], 0, 0
        for repeat in range(repeats):
            started = time.perf_counter()
            result = await runtime.run(program)
            mapped.append(time.perf_counter() - started)
            assert result.status is RunStatus.SUCCEEDED, result.error
            mapped_tokens = result.generated_tokens
            seconds, direct_tokens = await direct_batch(backend, max_tokens, str(repeat))
            direct.append(seconds)
    map_s, direct_s = statistics.median(mapped), statistics.median(direct)
    return {
        "calls": len(PROMPTS),
        "max_tokens": max_tokens,
        "repeats": repeats,
        "taskloom_map_s": map_s,
        "direct_engine_batch_s": direct_s,
        "taskloom_generated_tokens": mapped_tokens,
        "direct_generated_tokens": direct_tokens,
        "ratio": map_s / direct_s,
        "goal_ratio_at_most": 1.3,
        "all_runs_s": {"taskloom_map": mapped, "direct": direct},
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": platform.platform(), "python": platform.python_version()}
    report["dispatch"] = await dispatch(args.repeats, not args.no_tracing)
    print(json.dumps(report["dispatch"], indent=2))
    if not args.skip_engine:
        report["batching"] = await batching(args.repeats, args.max_tokens)
        print(json.dumps(report["batching"], indent=2))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/overhead.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--skip-engine", action="store_true", help="Only the dispatch part.")
    parser.add_argument("--no-tracing", action="store_true",
                        help="Dispatch with tracing off only (as before tracing existed).")
    arguments = parser.parse_args()
    outcome = anyio.run(main, arguments, backend="asyncio")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(outcome, indent=2))
    print(f"wrote {arguments.output}")
