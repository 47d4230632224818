"""LLMCompiler end to end on the scripted backend: streaming, joining, replanning and
bad plans, through a `plan` node of a real program."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


CITIES = {"Oslo": 709_000, "Bergen": 291_000}


def _tools(calls: list[tuple[str, float]] | None = None) -> ToolRegistry:
    @tool
    async def lookup(name: str) -> dict[str, Any]:
        """Facts about a city.

        Args:
            name: the city.
        """
        if calls is not None:
            calls.append((name, anyio.current_time()))
        await anyio.sleep(0.05)
        if name not in CITIES:
            raise KeyError(f"no city {name!r}")
        return {"name": name, "population": CITIES[name]}

    registry = default_registry()
    registry.register(lookup)
    return registry


def _purpose(request: GenerateRequest) -> str:
    return request.call_id.split("/")[-2]


def _user(request: GenerateRequest) -> str:
    assert request.messages is not None
    return request.messages[-1].content


def scripted(plans: list[str], joins: list[str]) -> Callable[[GenerateRequest], str]:
    """Answers the n-th planner call with plans[n] and the n-th joiner call with joins[n]."""

    def respond(request: GenerateRequest) -> str:
        purpose = _purpose(request)
        number = int(purpose[4:]) - 1
        return plans[number] if purpose.startswith("plan") else joins[number]

    return respond


SPEC = """
name: cities
inputs:
  question: {type: string, default: "How many people live in Oslo and Bergen?"}
nodes:
  answer:
    kind: plan
    question: "{{ inputs.question }}"
    tools: [lookup, calculator]
    max_replans: 1
outputs:
  answer: "{{ answer }}"
"""

PLAN = """Thought: both cities at once
1. lookup(name="Oslo")
2. lookup(name="Bergen")
3. calculator(expression="$1.population + $2.population")
4. join()
5. lookup(name="never run")
"""

TRICKY_ANSWER = 'About 1,000,000 (one million) people;\nsee "the census" :)'


@pytest.mark.anyio
async def test_a_plan_streams_runs_in_parallel_and_joins() -> None:
    calls: list[tuple[str, float]] = []
    backend = ScriptedBackend(
        respond=scripted([PLAN], [f"Thought: sum found\nAction: Finish({TRICKY_ANSWER})"]),
        per_chunk_s=0.01,
    )
    in_flight_at_first_call: set[str] = set()

    tools = _tools(calls)
    original = tools.get("lookup").fn

    async def spy(name: str) -> Any:
        if not in_flight_at_first_call:
            in_flight_at_first_call.update(backend.in_flight)
        return await original(name)

    tools.register(tool(spy, name="lookup", description="Facts about a city."), replace=True)
    result = await Runtime(backend, tools=tools).run(loads(SPEC))

    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == TRICKY_ANSWER
    # The first lookup ran while the planner was still writing the plan.
    assert any("/plan1/" in call_id for call_id in in_flight_at_first_call)
    # Nothing after join() was run, and the planner's call was stopped there.
    assert [name for name, _ in calls] == ["Oslo", "Bergen"]
    assert any("/plan1/" in call_id for call_id in backend.aborted)
    tasks = {k: v for k, v in result.nodes.items() if k.startswith("answer/")}
    assert set(tasks) == {"answer/plan1/1", "answer/plan1/2", "answer/plan1/3"}
    assert tasks["answer/plan1/3"].output == 1_000_000  # a number, added as numbers
    for task in tasks.values():
        assert task.status is NodeStatus.SUCCEEDED and task.kind == "tool"
        assert task.started_s is not None and task.ended_s is not None
    assert tasks["answer/plan1/3"].started_s >= max(  # type: ignore[operator]
        tasks["answer/plan1/1"].ended_s,
        tasks["answer/plan1/2"].ended_s,  # type: ignore[type-var]
    )
    node = result.nodes["answer"]
    assert node.llm_calls == 2 and node.prompt_tokens > 0 and node.generated_tokens > 0
    assert result.llm_calls == 2  # subtasks carry no tokens, so nothing is counted twice


@pytest.mark.anyio
async def test_a_replan_sees_the_earlier_plan_and_its_observations() -> None:
    first = '1. lookup(name="Osloo")\n2. join()\n'
    second = '1. lookup(name="Oslo")\n2. join()\n'
    backend = ScriptedBackend(
        respond=scripted(
            [first, second],
            [
                "Thought: failed\nAction: Replan(the name was misspelt)",
                "Thought: ok\nAction: Finish(709000)",
            ],
        )
    )
    result = await Runtime(backend, tools=_tools()).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == "709000"
    purposes = [_purpose(r) for r in backend.seen]
    assert purposes == ["plan1", "join1", "plan2", "join2"]
    replan_prompt = _user(backend.seen[2])
    assert 'lookup(name="Osloo")' in replan_prompt
    assert "no city 'Osloo'" in replan_prompt
    assert "the name was misspelt" in replan_prompt
    assert result.nodes["answer/plan1/1"].status is NodeStatus.FAILED
    assert result.nodes["answer/plan2/1"].output == {"name": "Oslo", "population": 709_000}


@pytest.mark.anyio
@pytest.mark.parametrize("max_replans", [0, 2])
async def test_replanning_stops_after_max_replans(max_replans: int) -> None:
    spec = SPEC.replace("max_replans: 1", f"max_replans: {max_replans}")
    attempts = max_replans + 1
    backend = ScriptedBackend(
        respond=scripted(
            ['1. lookup(name="Oslo")\n2. join()\n'] * attempts,
            ["Action: Replan(never satisfied)"] * attempts,
        )
    )
    result = await Runtime(backend, tools=_tools()).run(loads(spec))
    assert result.status is RunStatus.FAILED
    error = result.nodes["answer"].error or ""
    assert f"after {max_replans} replans" in error and "never satisfied" in error
    purposes = [_purpose(r) for r in backend.seen]
    assert purposes.count("plan" + str(attempts)) == 1
    assert f"plan{attempts + 1}" not in purposes
    # The last joiner was told it could not replan any more.
    assert "no chance to plan again" in (backend.seen[-1].messages or ())[0].content


@pytest.mark.anyio
async def test_bad_plans_reach_the_joiner_as_observations() -> None:
    bad = (
        '1. lokup(name="Oslo")\n'
        "2. lookup(name=$2)\n"
        "3. lookup(name=$4)\n"
        "4. lookup(name=Oslo)\n"
        '5. calculator(expression="x", precision=3)\n'
        '6. lookup(name="Nowhere")\n'
        "7. calculator(expression=$6.population)\n"
        "8. join()\n"
    )
    backend = ScriptedBackend(respond=scripted([bad], ["Action: Finish(could not tell)"]))
    with anyio.fail_after(10):
        result = await Runtime(backend, tools=_tools()).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED, result.error
    joiner_prompt = _user(backend.seen[-1])
    for expected in (
        "unknown tool 'lokup'; did you mean 'lookup'?",
        "$2 refers to task 2 itself",
        "$4 refers to task 4, which comes later",
        "`Oslo` is not a value",
        "'precision' is not an argument",
        "no city 'Nowhere'",
        "not run: $6 failed",
    ):
        assert expected in joiner_prompt, expected
    failed = [n for n in result.nodes.values() if n.node_id.startswith("answer/")]
    assert len(failed) == 7 and all(n.status is NodeStatus.FAILED for n in failed)


@pytest.mark.anyio
async def test_arguments_of_the_wrong_type_fail_the_task_with_the_reason() -> None:
    plan = (
        "1. lookup(name=5)\n"  # a number where the tool takes text
        '2. lookup(name="Oslo")\n'
        "3. calculator(expression=$2)\n"  # $2 stays a record, not text: no silent str()
        '4. calculator(expression="$2.population * 2")\n'
        "5. join()\n"
    )
    backend = ScriptedBackend(respond=scripted([plan], ["Action: Finish(1418000)"]))
    with anyio.fail_after(10):
        result = await Runtime(backend, tools=_tools()).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED, result.error
    tasks = {n: result.nodes[f"answer/plan1/{n}"] for n in (1, 2, 3, 4)}
    assert [tasks[n].status for n in (1, 2, 3, 4)] == [
        NodeStatus.FAILED,
        NodeStatus.SUCCEEDED,
        NodeStatus.FAILED,
        NodeStatus.SUCCEEDED,
    ]
    for number in (1, 3):
        error = tasks[number].error or ""
        assert "invalid arguments" in error and "valid string" in error, error
        assert tasks[number].attempts == 1  # it reached the tool, which refused the call
    assert tasks[4].output == 1_418_000
    joiner_prompt = _user(backend.seen[-1])
    assert joiner_prompt.count("invalid arguments") == 2  # the joiner can act on both


@pytest.mark.anyio
async def test_json_plans_use_an_enum_of_the_tools_and_stream_too() -> None:
    plan = json.dumps(
        {
            "tasks": [
                {"id": 1, "tool": "lookup", "args": {"name": "Oslo"}},
                {"id": 2, "tool": "calculator", "args": {"expression": "$1.population * 2"}},
            ]
        }
    )
    joined = json.dumps({"thought": "doubled", "action": "finish", "answer": {"people": 1418000}})
    spec = SPEC.replace(
        "    max_replans: 1",
        """    max_replans: 1
    format: json
    output_schema:
      type: object
      properties: {people: {type: integer}}
      required: [people]""",
    ).replace('answer: "{{ answer }}"', 'answer: "{{ answer.people }}"')
    backend = ScriptedBackend(respond=scripted([plan], [joined]))
    result = await Runtime(backend, tools=_tools()).run(loads(spec))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == 1_418_000
    plan_schema = backend.seen[0].json_schema
    assert plan_schema is not None
    tool_names = [
        v["properties"]["tool"]["enum"]
        for v in plan_schema["properties"]["tasks"]["items"]["anyOf"]
    ]
    assert sorted(name for names in tool_names for name in names) == ["calculator", "lookup"]
    assert result.nodes["answer/plan1/2"].output == 1_418_000


@pytest.mark.anyio
async def test_a_plan_node_waits_for_the_nodes_its_question_reads() -> None:
    spec = """
name: two
nodes:
  city: {kind: tool, tool: calculator, args: {expression: "1 + 1"}}
  answer:
    kind: plan
    question: "What about city number {{ city }}?"
    tools: [lookup]
outputs:
  answer: "{{ answer }}"
"""
    program = loads(spec)
    graph = compile_program(program, _tools())
    assert graph.dependencies("answer") == ("city",)
    backend = ScriptedBackend(respond=scripted(["1. join()\n"], ["Action: Finish(none)"]))
    result = await Runtime(backend, tools=_tools()).run(program)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert "What about city number 2?" in _user(backend.seen[0])


def test_unknown_planner_tools_are_located_with_a_hint() -> None:
    spec = """
name: bad
nodes:
  answer:
    kind: plan
    question: "q {{ missing }}"
    tools: [lookup, calculater]
    output_schema: {type: nonsense}
"""
    with pytest.raises(SpecErrors) as caught:
        compile_program(loads(spec, filename="bad.yaml"), _tools())
    text = str(caught.value)
    assert "bad.yaml:7:" in text and "unknown tool 'calculater'" in text
    assert "did you mean 'calculator'?" in text
    assert "'missing' is not a node or `inputs`" in text
    assert "output_schema is not a valid JSON schema" in text


@pytest.mark.anyio
async def test_an_engine_failure_fails_the_node_cleanly() -> None:
    backend = ScriptedBackend(respond=scripted([PLAN], ["x"]), fail_after_chunks=5)
    with anyio.fail_after(10):
        result = await Runtime(backend, tools=_tools()).run(loads(SPEC))
    assert result.status is RunStatus.FAILED
    assert "scripted engine died" in (result.nodes["answer"].error or "")


def test_plan_node_fields_are_checked_when_the_spec_loads() -> None:
    spec = """
name: bad
nodes:
  answer:
    kind: plan
    question: q
    tools: [lookup]
    max_replan: 2
"""
    with pytest.raises(SpecError) as caught:
        loads(spec, filename="bad.yaml")
    assert "unknown field 'max_replan'" in str(caught.value)
    assert "did you mean 'max_replans'?" in str(caught.value)
    with pytest.raises(SpecError, match="tools"):
        loads(spec.replace("    max_replan: 2\n", "").replace("[lookup]", "[]"))
