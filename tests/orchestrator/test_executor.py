"""The executor on the scripted backend: ordering, overlap, failures, cancellation."""

from __future__ import annotations

import json
import time
from typing import Any

import anyio
import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.inputs import InputError
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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


@pytest.mark.anyio
async def test_independent_nodes_overlap_and_dependents_wait() -> None:
    backend = ScriptedBackend(respond=echo, delay_s=0.2)
    result = await _runtime(backend).run(loads(FAN_OUT))
    assert result.status is RunStatus.SUCCEEDED
    nodes = result.nodes
    a, b, c, join = (nodes[n] for n in ("a", "b", "c", "join"))
    # The three roots were all running at once...
    latest_start = max(n.started_s or 0 for n in (a, b, c))
    earliest_end = min(n.ended_s or 0 for n in (a, b, c))
    assert latest_start < earliest_end
    # ...and the join started only after every one of them ended.
    assert join.started_s is not None
    assert join.started_s >= max(n.ended_s or 0 for n in (a, b, c))
    assert result.outputs["joined"] == "echo: echo: A tea | echo: B tea | echo: C tea"
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
    backend = ScriptedBackend(respond=echo, delay_s=0.2)
    result = await _runtime(backend).run(loads(spec))
    assert result.outputs["all"] == ["echo: 0:one", "echo: 1:two", "echo: 2:three", "echo: 3:four"]
    assert result.nodes["each"].llm_calls == 4
    # Four calls of 0.2 s each, one after another, would take 0.8 s.
    duration = result.nodes["each"].duration_s
    assert duration is not None and duration < 0.6


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


@tool
def hang(seconds: float) -> str:
    """Sleeps in a worker thread, like a tool stuck on I/O.

    Args:
        seconds: how long to sleep.
    """
    time.sleep(seconds)
    return "woke"


@pytest.mark.anyio
async def test_a_tool_that_hangs_is_stopped_by_its_timeout() -> None:
    spec = """
name: h
nodes:
  stuck: {kind: tool, tool: hang, args: {seconds: 3}, timeout: 0.2}
  other: {kind: llm, prompt: fine}
"""
    started = time.monotonic()
    result = await _runtime(ScriptedBackend(respond=echo), hang).run(loads(spec))
    assert time.monotonic() - started < 2.5
    stuck = result.nodes["stuck"]
    assert stuck.status is NodeStatus.FAILED
    assert "timed out after 0.2s" in (stuck.error or "")
    assert result.nodes["other"].status is NodeStatus.SUCCEEDED


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
  x: {kind: llm, prompt: p, retries: 2, retry_backoff: 0.01}
"""
    flaky = Flaky(failures=2)
    result = await _runtime(ScriptedBackend(respond=flaky)).run(loads(spec))
    assert result.nodes["x"].status is NodeStatus.SUCCEEDED
    assert result.nodes["x"].attempts == 3
    assert result.nodes["x"].output == "finally"


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


@pytest.mark.anyio
async def test_cancelling_a_run_aborts_engine_requests_and_keeps_partial_results() -> None:
    spec = """
name: c
nodes:
  quick: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  slow1: {kind: llm, prompt: "one"}
  slow2: {kind: llm, prompt: "two"}
"""
    backend = ScriptedBackend(respond=echo, delay_s=10)
    runtime = _runtime(backend)
    with anyio.move_on_after(0.3):
        await runtime.run(loads(spec))
        pytest.fail("the run should have been cancelled")
    assert backend.in_flight == set()
    assert len(backend.aborted) == 2
    partial = runtime.last_result
    assert partial is not None and partial.status is RunStatus.CANCELLED
    assert partial.nodes["quick"].output == 42
    assert partial.nodes["slow1"].status is NodeStatus.CANCELLED


@pytest.mark.anyio
async def test_run_timeout_ends_in_a_cancelled_result() -> None:
    spec = """
name: t
nodes:
  slow: {kind: llm, prompt: "one"}
"""
    backend = ScriptedBackend(respond=echo, delay_s=10)
    result = await _runtime(backend).run(loads(spec), timeout=0.2)
    assert result.status is RunStatus.CANCELLED
    assert "timed out" in (result.error or "")
    assert backend.in_flight == set() and backend.aborted


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


def test_registry_fixture_is_isolated() -> None:
    # Registering a test tool must not leak into a fresh default registry.
    assert "explode" not in default_registry()
    assert isinstance(default_registry(), ToolRegistry)


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
