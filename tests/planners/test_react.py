"""The ReAct baseline: one tool call per LLM call, a final answer or the step limit."""

from __future__ import annotations

import json

import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.planners.base import FINISH_TOOL
from taskloom.planners.react import parse_json_step, parse_text_step, react_step_schema
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import default_registry


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SPEC = """
name: react
nodes:
  answer:
    kind: plan
    planner: react
    question: "What is (2 + 3) * 4?"
    tools: [calculator]
    max_steps: 3
outputs:
  answer: "{{ answer }}"
"""


def _user(request: GenerateRequest) -> str:
    assert request.messages is not None
    return request.messages[-1].content


def test_a_step_is_an_action_or_a_final_answer() -> None:
    action = parse_text_step('Thought: add first\nAction: calculator(expression="2 + 3")', 1)
    assert (action.tool, action.args, action.thought) == (
        "calculator",
        {"expression": "2 + 3"},
        "add first",
    )
    final = parse_text_step('Thought: done\nFinal Answer: 20 (twenty),\nsaid "x")', 4)
    assert final.tool == FINISH_TOOL and final.args == {"answer": '20 (twenty),\nsaid "x")'}
    imagined = parse_text_step(
        'Action: calculator(expression="1")\nObservation: 7\nFinal Answer: 7', 2
    )
    assert imagined.tool == "calculator"  # what the model imagined after acting is dropped
    assert parse_text_step("I am not sure.", 1).error is not None
    assert "not closed" in (parse_text_step('Action: calculator(expression="1"', 1).error or "")


def test_json_steps_follow_the_schema() -> None:
    step = parse_json_step('{"thought": "t", "tool": "calculator", "args": {"expression": "1"}}', 1)
    assert (step.tool, step.args) == ("calculator", {"expression": "1"})
    assert "not valid JSON" in (parse_json_step('{"thought": "t", "to', 1).error or "")
    schema = react_step_schema([default_registry().get("calculator")])
    names = [variant["properties"]["tool"]["enum"][0] for variant in schema["anyOf"]]
    assert names == ["calculator", FINISH_TOOL]


@pytest.mark.anyio
async def test_react_takes_one_tool_call_per_llm_call_until_it_answers() -> None:
    replies = iter(
        [
            'Thought: first the sum\nAction: calculator(expression="2 + 3")',
            'Thought: now the product\nAction: calculator(expression="5 * 4")',
            "Thought: done\nFinal Answer: 20",
        ]
    )
    backend = ScriptedBackend(respond=lambda request: next(replies))
    result = await Runtime(backend).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == "20"
    assert result.nodes["answer"].llm_calls == 3
    assert result.nodes["answer/step1/1"].output == 5
    assert result.nodes["answer/step2/2"].output == 20
    last_prompt = _user(backend.seen[-1])
    assert 'Action: calculator(expression="5 * 4")\nObservation: 20' in last_prompt
    # Each call carried the whole scratchpad so far, and nothing was asked in parallel.
    assert [_user(r).count("Observation:") for r in backend.seen] == [0, 1, 2]


@pytest.mark.anyio
async def test_react_stops_at_the_step_limit_and_shows_errors_as_observations() -> None:
    backend = ScriptedBackend(
        respond=lambda request: 'Thought: hmm\nAction: calculatr(expression="1")'
    )
    result = await Runtime(backend).run(loads(SPEC))
    assert result.status is RunStatus.FAILED
    assert "max_steps (3)" in (result.nodes["answer"].error or "")
    assert result.nodes["answer"].llm_calls == 3
    assert "did you mean 'calculator'?" in _user(backend.seen[-1])
    assert result.nodes["answer/step3/3"].status is NodeStatus.FAILED


@pytest.mark.anyio
async def test_react_refuses_references_to_earlier_results() -> None:
    replies = iter(["Action: calculator(expression=$1)", "Final Answer: 20"])
    backend = ScriptedBackend(respond=lambda request: next(replies))
    result = await Runtime(backend).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert "a ReAct action takes values" in (result.nodes["answer/step1/1"].error or "")


@pytest.mark.anyio
async def test_react_json_steps_run_under_a_schema() -> None:
    replies = iter(
        [
            json.dumps(
                {"thought": "t", "tool": "calculator", "args": {"expression": "(2 + 3) * 4"}}
            ),
            json.dumps({"thought": "t", "tool": "finish", "args": {"answer": "20"}}),
        ]
    )
    spec = SPEC.replace("max_steps: 3", "max_steps: 3\n    format: json")
    backend = ScriptedBackend(respond=lambda request: next(replies))
    result = await Runtime(backend).run(loads(spec))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == "20"
    assert result.nodes["answer/step1/1"].output == 20
    assert all(r.json_schema is not None for r in backend.seen)
