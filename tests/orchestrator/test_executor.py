"""The executor on the scripted backend: ordering, overlap, failures, cancellation.

Every test runs on virtual time (trio with `MockClock(autojump_threshold=0)`): the clock
starts at 0 and jumps to the next deadline whenever every task is asleep, so a scripted
call of `delay_s=1` takes exactly one second and node times are asserted exactly.
"""

from __future__ import annotations

import json
import math
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from taskloom import SpecErrors, compile_program
from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.cli_render import run_result_json
from taskloom.orchestrator.executor import Executor
from taskloom.orchestrator.inputs import InputError
from taskloom.orchestrator.result import NodeResult, NodeStatus, Preemption, RunResult, RunStatus
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import Tool, default_registry, tool


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


def _last_user_text(request: GenerateRequest) -> str:
    assert request.messages is not None
    return request.messages[-1].content


def echo(request: GenerateRequest) -> str:
    return "echo: " + _last_user_text(request)


def _runtime(backend: ScriptedBackend, *extra: Any) -> Runtime:
    tools = default_registry()
    for fn in extra:
        tools.register(fn)
    return Runtime(backend, tools=tools)


FAN_OUT = """
name: fan
inputs:
  topic: {type: string, default: tea}
nodes:
  a: {kind: llm, prompt: "A {{ inputs.topic }}"}
  b: {kind: llm, prompt: "B {{ inputs.topic }}"}
  c: {kind: llm, prompt: "C {{ inputs.topic }}"}
  join: {kind: llm, prompt: "{{ a }} | {{ b }} | {{ c }}"}
outputs:
  joined: "{{ join }}"
"""


def _span(node: NodeResult) -> tuple[float | None, float | None]:
    return node.started_s, node.ended_s


@pytest.mark.anyio
async def test_independent_nodes_overlap_and_dependents_wait() -> None:
    backend = ScriptedBackend(respond=echo, delay_s=1)
    result = await _runtime(backend).run(loads(FAN_OUT))
    assert result.status is RunStatus.SUCCEEDED
    # Each call takes one second. The three roots ran side by side, from 0 to 1 (one
    # after another they would have ended at 1, 2 and 3)...
    for root in ("a", "b", "c"):
        assert _span(result.nodes[root]) == (0.0, 1.0)
    # ...and the join started the moment the last of them ended.
    assert _span(result.nodes["join"]) == (1.0, 2.0)
    assert result.wall_s == 2.0
    assert result.outputs["joined"] == "echo: echo: A tea | echo: B tea | echo: C tea"
    join = result.nodes["join"]
    assert join.prompt_tokens > 0 and join.generated_tokens > 0


@pytest.mark.anyio
async def test_json_output_fields_are_referenced_with_their_types() -> None:
    spec = """
name: j
nodes:
  info:
    kind: llm
    prompt: give json
    output_schema:
      type: object
      properties: {count: {type: integer}, names: {type: array, items: {type: string}}}
      required: [count, names]
  double: {kind: tool, tool: calculator, args: {expression: "{{ info.count }} * 2"}}
outputs:
  first: "{{ info.names[0] }}"
  doubled: "{{ double }}"
  count: "{{ info.count }}"
"""
    backend = ScriptedBackend(respond=lambda r: json.dumps({"count": 21, "names": ["x", "y"]}))
    result = await _runtime(backend).run(loads(spec))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs == {"first": "x", "doubled": 42, "count": 21}
    assert backend.seen[0].json_schema is not None


@pytest.mark.anyio
async def test_invalid_json_answer_fails_the_node_with_a_hint() -> None:
    spec = """
name: j
nodes:
  info: {kind: llm, prompt: p, output_schema: {type: object}}
"""
    backend = ScriptedBackend(respond=lambda r: '{"cut": ')
    result = await _runtime(backend).run(loads(spec))
    assert result.nodes["info"].status is NodeStatus.FAILED
    assert "max_tokens" in (result.nodes["info"].error or "")


@pytest.mark.anyio
async def test_map_runs_items_concurrently_and_keeps_order() -> None:
    spec = """
name: m
inputs:
  xs: {type: array, default: [one, two, three, four]}
nodes:
  each:
    kind: map
    over: "{{ inputs.xs }}"
    as: word
    node: {kind: llm, prompt: "{{ index }}:{{ word }}"}
outputs:
  all: "{{ each }}"
"""
    backend = ScriptedBackend(respond=echo, delay_s=1)
    result = await _runtime(backend).run(loads(spec))
    assert result.outputs["all"] == ["echo: 0:one", "echo: 1:two", "echo: 2:three", "echo: 3:four"]
    assert result.nodes["each"].llm_calls == 4
    # Four one-second calls at once take one second; one after another, four.
    assert _span(result.nodes["each"]) == (0.0, 1.0)


@pytest.mark.anyio
async def test_map_max_parallel_caps_the_items_in_flight() -> None:
    spec = """
name: m
inputs:
  xs: {type: array, default: [a, b, c, d, e]}
nodes:
  each:
    kind: map
    over: "{{ inputs.xs }}"
    max_parallel: 2
    node: {kind: llm, prompt: "{{ item }}"}
outputs:
  all: "{{ each }}"
"""
    backend = ScriptedBackend(respond=echo, delay_s=1)
    result = await _runtime(backend).run(loads(spec))
    assert result.outputs["all"] == ["echo: a", "echo: b", "echo: c", "echo: d", "echo: e"]
    # Five one-second calls, two at a time: waves of 2, 2 and 1.
    assert _span(result.nodes["each"]) == (0.0, 3.0)


@pytest.mark.anyio
async def test_map_over_a_non_list_fails_clearly() -> None:
    spec = """
name: m
nodes:
  src: {kind: tool, tool: calculator, args: {expression: "2 + 2"}}
  each: {kind: map, over: "{{ src }}", node: {kind: llm, prompt: "{{ item }}"}}
"""
    # A tool's output type is only known when it runs, so this is caught at run time.
    result = await _runtime(ScriptedBackend()).run(loads(spec))
    assert result.nodes["each"].status is NodeStatus.FAILED
    assert "must give a list, got int" in (result.nodes["each"].error or "")


@pytest.mark.anyio
async def test_false_guard_skips_a_node_and_dependents_still_run() -> None:
    spec = """
name: w
inputs:
  go: {type: boolean, default: false}
nodes:
  maybe: {kind: llm, prompt: p, when: "inputs.go"}
  after_it: {kind: llm, prompt: "{{ maybe if maybe else 'nothing' }}"}
"""
    backend = ScriptedBackend(respond=echo)
    result = await _runtime(backend).run(loads(spec))
    assert result.nodes["maybe"].status is NodeStatus.SKIPPED
    assert result.nodes["maybe"].output is None
    assert result.nodes["after_it"].output == "echo: nothing"
    assert len(backend.seen) == 1


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: what to complain about.
    """
    raise ValueError(f"boom: {reason}")


@pytest.mark.anyio
async def test_a_tool_that_raises_fails_its_branch_and_keeps_the_rest() -> None:
    spec = """
name: f
nodes:
  good: {kind: llm, prompt: fine}
  bad: {kind: tool, tool: explode, args: {reason: nope}}
  needs_bad: {kind: llm, prompt: "{{ bad }}"}
outputs:
  good: "{{ good }}"
"""
    backend = ScriptedBackend(respond=echo)
    result = await _runtime(backend, explode).run(loads(spec))
    assert result.status is RunStatus.FAILED
    assert result.nodes["good"].status is NodeStatus.SUCCEEDED
    assert result.outputs["good"] == "echo: fine"
    bad = result.nodes["bad"]
    assert bad.status is NodeStatus.FAILED and "boom: nope" in (bad.error or "")
    assert result.nodes["needs_bad"].status is NodeStatus.SKIPPED
    assert "upstream node 'bad' failed" in (result.nodes["needs_bad"].error or "")


def hanging_tool(outcomes: list[str]) -> Tool:
    """A tool stuck on I/O: it sleeps (on the event loop, so a timeout can cancel it) and
    appends to `outcomes` how the sleep ended."""

    @tool
    async def hang(seconds: float) -> str:
        """Sleeps like a tool waiting on I/O.

        Args:
            seconds: how long to sleep.
        """
        try:
            await anyio.sleep(seconds)
        except anyio.get_cancelled_exc_class():
            outcomes.append(f"cancelled at {anyio.current_time():g}")
            raise
        outcomes.append("woke")
        return "woke"

    return hang


@pytest.mark.anyio
async def test_a_tool_that_hangs_is_stopped_by_its_timeout() -> None:
    spec = """
name: h
nodes:
  stuck: {kind: tool, tool: hang, args: {seconds: 30}, timeout: 2}
  other: {kind: llm, prompt: fine}
"""
    outcomes: list[str] = []
    runtime = _runtime(ScriptedBackend(respond=echo, delay_s=1), hanging_tool(outcomes))
    result = await runtime.run(loads(spec))
    stuck = result.nodes["stuck"]
    assert stuck.status is NodeStatus.FAILED
    assert "timed out after 2s" in (stuck.error or "")
    assert _span(stuck) == (0.0, 2.0)
    assert outcomes == ["cancelled at 2"]  # the tool itself was stopped, not abandoned
    assert _span(result.nodes["other"]) == (0.0, 1.0)  # and did not hold up the rest
    assert result.wall_s == 2.0


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, request: GenerateRequest) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"transient failure {self.calls}")
        return "finally"


@pytest.mark.anyio
async def test_retries_with_backoff_then_succeed() -> None:
    spec = """
name: r
nodes:
  x: {kind: llm, prompt: p, retries: 2, retry_backoff: 0.5}
"""
    flaky = Flaky(failures=2)
    result = await _runtime(ScriptedBackend(respond=flaky)).run(loads(spec))
    x = result.nodes["x"]
    assert x.status is NodeStatus.SUCCEEDED
    assert x.attempts == 3 and flaky.calls == 3
    assert x.output == "finally"
    # The failures are instant; the waits between attempts double: 0.5 s, then 1 s.
    assert _span(x) == (0.0, 1.5)


@pytest.mark.anyio
async def test_retries_run_out_and_the_last_failure_is_reported() -> None:
    spec = """
name: r
nodes:
  x: {kind: llm, prompt: p, retries: 1, retry_backoff: 1}
"""
    flaky = Flaky(failures=5)
    result = await _runtime(ScriptedBackend(respond=flaky)).run(loads(spec))
    x = result.nodes["x"]
    assert x.status is NodeStatus.FAILED
    assert x.attempts == 2 and flaky.calls == 2
    assert "transient failure 2" in (x.error or "")
    assert _span(x) == (0.0, 1.0)  # one wait, none after the last attempt


@pytest.mark.anyio
async def test_on_error_skip_and_default() -> None:
    spec = """
name: e
nodes:
  skipped: {kind: tool, tool: explode, args: {reason: a}, on_error: skip}
  defaulted: {kind: tool, tool: explode, args: {reason: b}, on_error: default, default: 7}
  uses: {kind: tool, tool: calculator, args: {expression: "{{ defaulted }} + 1"}}
"""
    result = await _runtime(ScriptedBackend(), explode).run(loads(spec))
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["skipped"].status is NodeStatus.SKIPPED
    assert "boom: a" in (result.nodes["skipped"].error or "")
    assert result.nodes["defaulted"].output == 7
    assert result.nodes["uses"].output == 8


@pytest.mark.anyio
async def test_engine_dying_mid_stream_fails_the_node_and_keeps_finished_work() -> None:
    spec = """
name: d
nodes:
  first: {kind: tool, tool: calculator, args: {expression: "1 + 1"}}
  talk: {kind: llm, prompt: "say many words please"}
outputs:
  first: "{{ first }}"
"""
    backend = ScriptedBackend(respond=lambda r: "a b c d e f", fail_after_chunks=2)
    result = await _runtime(backend).run(loads(spec))
    assert result.status is RunStatus.FAILED
    assert "died mid-stream" in (result.nodes["talk"].error or "")
    assert result.nodes["talk"].generated_tokens == 2  # what was spent is still counted
    assert result.outputs["first"] == 2


@tool
async def multiply(a: int, b: int) -> int:
    """Multiplies on the event loop. (A sync tool runs in a worker thread, and virtual time
    may jump past a deadline while that thread works.)

    Args:
        a: one factor.
        b: the other.
    """
    return a * b


@pytest.mark.anyio
async def test_cancelling_a_run_aborts_engine_requests_and_keeps_partial_results() -> None:
    spec = """
name: c
nodes:
  quick: {kind: tool, tool: multiply, args: {a: 6, b: 7}}
  slow1: {kind: llm, prompt: "one"}
  slow2: {kind: llm, prompt: "two"}
"""
    backend = ScriptedBackend(respond=echo, delay_s=10)
    runtime = _runtime(backend, multiply)
    stop = anyio.Event()

    async def stop_at_3() -> None:
        await anyio.sleep(3)
        stop.set()

    async with anyio.create_task_group() as group:
        group.start_soon(stop_at_3)
        partial = await runtime.run(loads(spec), cancel=stop)
    assert anyio.current_time() == 3.0
    assert backend.in_flight == set()
    assert sorted(backend.aborted) == sorted(r.call_id for r in backend.seen)
    assert len(backend.aborted) == 2
    assert partial.status is RunStatus.CANCELLED
    assert partial.error == "run cancelled"
    assert partial.nodes["quick"].output == 42
    for slow in ("slow1", "slow2"):
        assert partial.nodes[slow].status is NodeStatus.CANCELLED
        assert _span(partial.nodes[slow]) == (0.0, 3.0)


@pytest.mark.anyio
async def test_a_cancellation_from_outside_aborts_and_propagates() -> None:
    backend = ScriptedBackend(respond=echo, delay_s=10)
    with anyio.move_on_after(3) as scope:
        await _runtime(backend).run(loads(FAN_OUT))
    assert scope.cancelled_caught and anyio.current_time() == 3.0
    assert backend.in_flight == set() and len(backend.aborted) == 3


@pytest.mark.anyio
async def test_run_timeout_ends_in_a_cancelled_result() -> None:
    spec = """
name: t
nodes:
  slow: {kind: llm, prompt: "one"}
"""
    backend = ScriptedBackend(respond=echo, delay_s=10)
    result = await _runtime(backend).run(loads(spec), timeout=2)
    assert result.status is RunStatus.CANCELLED
    assert result.error == "run timed out after 2s"
    assert result.wall_s == 2.0
    assert result.nodes["slow"].status is NodeStatus.CANCELLED
    assert _span(result.nodes["slow"]) == (0.0, 2.0)
    assert backend.in_flight == set()
    assert backend.aborted == [backend.seen[0].call_id]


@pytest.mark.anyio
async def test_n_samples_get_distinct_seeds_and_a_list_output() -> None:
    spec = """
name: n
nodes:
  votes: {kind: llm, prompt: p, n: 3, seed: 10, temperature: 0.7}
"""
    backend = ScriptedBackend(respond=lambda r: f"seed {r.sampling.seed}")
    result = await _runtime(backend).run(loads(spec))
    assert sorted(result.nodes["votes"].output) == ["seed 10", "seed 11", "seed 12"]
    assert result.nodes["votes"].llm_calls == 3


@pytest.mark.anyio
async def test_calls_carry_program_and_parent_ids() -> None:
    backend = ScriptedBackend(respond=echo)
    result = await _runtime(backend).run(loads(FAN_OUT), run_id="run42")
    by_thread = {r.thread_id.split("/")[0]: r for r in backend.seen}
    assert {r.program_id for r in backend.seen} == {"run42"}
    assert set(by_thread["join"].parent_call_ids) == {
        by_thread[n].call_id for n in ("a", "b", "c")
    }
    assert result.run_id == "run42"


@pytest.mark.anyio
async def test_bad_inputs_are_refused_before_anything_runs() -> None:
    spec = """
name: i
inputs:
  n: {type: integer}
nodes:
  x: {kind: llm, prompt: "{{ inputs.n }}"}
"""
    backend = ScriptedBackend()
    runtime = _runtime(backend)
    with pytest.raises(InputError, match="missing input 'n'"):
        await runtime.run(loads(spec), {})
    with pytest.raises(InputError, match="did you mean 'n'"):
        await runtime.run(loads(spec), {"n": 1, "nn": 2})
    with pytest.raises(InputError, match="is not of type 'integer'"):
        await runtime.run(loads(spec), {"n": "three"})
    assert backend.seen == []


@pytest.mark.anyio
async def test_a_tool_registered_on_one_runtime_is_unknown_to_another() -> None:
    spec = loads("name: f\nnodes:\n  bad: {kind: tool, tool: explode, args: {reason: x}}\n")
    with_tool = await _runtime(ScriptedBackend(), explode).run(spec)
    assert "boom: x" in (with_tool.nodes["bad"].error or "")
    # The registration went into that runtime's own registry, not a shared one: a fresh
    # default registry, and a runtime built on one, do not know the tool.
    assert "explode" not in default_registry()
    with pytest.raises(SpecErrors, match="unknown tool 'explode'"):
        await _runtime(ScriptedBackend()).run(spec)


@pytest.mark.anyio
async def test_a_guard_inside_a_map_skips_single_items() -> None:
    spec = """
name: m
inputs:
  xs: {type: array, default: [1, 2, 3, 4]}
nodes:
  odd:
    kind: map
    over: "{{ inputs.xs }}"
    node: {kind: tool, tool: calculator, args: {expression: "{{ item }} * 10"}, when: "item % 2"}
outputs:
  all: "{{ odd }}"
"""
    result = await _runtime(ScriptedBackend()).run(loads(spec))
    assert result.outputs["all"] == [10, None, 30, None]


@pytest.mark.anyio
async def test_an_executor_runs_a_compiled_graph_through_the_scheduler_it_is_given() -> None:
    backend = ScriptedBackend(respond=echo, delay_s=1)
    runtime = _runtime(backend)
    graph = compile_program(loads(FAN_OUT), runtime.tools)
    scheduler = runtime.scheduler_for(runtime.policy)
    executor = Executor(graph, scheduler=scheduler, tools=runtime.tools, run_id="r1")
    before = executor.snapshot()
    assert {n.status for n in before.nodes.values()} == {NodeStatus.PENDING}
    result = await executor.run({"topic": "rain"})
    assert result.run_id == "r1" and result.inputs == {"topic": "rain"}
    assert result.outputs["joined"] == "echo: echo: A rain | echo: B rain | echo: C rain"
    assert result.llm_calls == 4 and len(backend.seen) == 4
    assert executor.snapshot() == result  # a finished run's snapshot is its result


@pytest.mark.anyio
async def test_events_follow_each_node_from_running_to_done_in_virtual_time() -> None:
    events: list[tuple[str, str, float]] = []
    backend = ScriptedBackend(respond=echo, delay_s=1)
    await _runtime(backend).run(
        loads(FAN_OUT), on_event=lambda e: events.append((e.node_id, e.status, e.at_s))
    )
    assert sorted(events) == sorted(
        [(root, "running", 0.0) for root in "abc"]
        + [(root, "succeeded", 1.0) for root in "abc"]
        + [("join", "running", 1.0), ("join", "succeeded", 2.0)]
    )


PREEMPTING = """
name: preempting
nodes:
  long: {kind: llm, prompt: long}
  pause: {kind: tool, tool: pause, args: {seconds: 3.5}}
  short: {kind: llm, prompt: "short, after {{ pause }}"}
"""


@tool
async def pause(seconds: float) -> float:
    """Sleeps on the event loop.

    Args:
        seconds: how long to sleep.
    """
    await anyio.sleep(seconds)
    return seconds


@pytest.mark.anyio
async def test_a_nodes_preemptions_are_the_ones_the_scheduler_counted() -> None:
    # MLFQ, one slot: `long` (one word a second) is demoted after 2 s; `short` arrives at
    # 3.5 s on the top level and takes its slot until it ends at 15.5 s.
    backend = ScriptedBackend(respond=lambda r: " ".join(["w"] * 12), delay_s=1, per_chunk_s=1)
    scheduler = ProgramAwareScheduler([backend], "mlfq", max_in_flight=1,
                                      queues=QueueConfig(boundaries_s=(2.0,), beta=math.inf))
    tools = default_registry()
    tools.register(pause)
    result = await Runtime(backend, tools=tools, scheduler=scheduler).run(loads(PREEMPTING))
    assert result.status is RunStatus.SUCCEEDED, result.error
    long, short = result.nodes["long"], result.nodes["short"]
    assert long.preemptions == scheduler.stats().preemptions == 1
    assert long.preempted == (Preemption(at_s=3.5, resumed_s=15.5),)
    assert short.preemptions == 0 and result.nodes["pause"].preempted == ()
    assert result.totals()["preemptions"] == 1
    assert RunResult.from_dict(json.loads(result.to_json())) == result
    shown = run_result_json(result)["nodes"]["long"]
    assert (shown["preemptions"], shown["preempted"]) == (1, [{"at": 3.5, "resumed": 15.5}])
