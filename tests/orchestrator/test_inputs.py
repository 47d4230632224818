"""Resolving a run's inputs against the program's declared, typed inputs."""

from __future__ import annotations

from typing import Any

import pytest

from taskloom.orchestrator.inputs import InputError, resolve_inputs
from taskloom.program.load import loads
from taskloom.program.models import Program

DECLARED = """
name: i
inputs:
  topic: {type: string, default: tea}
  count: {type: integer}
  ratio: {type: number, default: 0.5}
  loud: {type: boolean, default: false}
  zero: {type: integer, default: 0}
  tags: {type: array, items: {type: string}, default: []}
  mood: {type: string, enum: [calm, busy], default: calm}
  extra: {type: object, default: {a: 1}}
nodes:
  x: {kind: llm, prompt: "{{ inputs.topic }}"}
"""


@pytest.fixture
def program() -> Program:
    return loads(DECLARED)


def test_defaults_fill_what_was_not_given_even_falsy_ones(program: Program) -> None:
    assert resolve_inputs(program, {"count": 3}) == {
        "topic": "tea", "count": 3, "ratio": 0.5, "loud": False, "zero": 0,
        "tags": [], "mood": "calm", "extra": {"a": 1},
    }


def test_a_given_value_wins_over_the_default(program: Program) -> None:
    given = {"count": 3, "topic": "rain", "loud": True, "tags": ["x"], "mood": "busy"}
    resolved = resolve_inputs(program, given)
    assert {name: resolved[name] for name in given} == given


def test_the_given_mapping_is_not_changed(program: Program) -> None:
    given = {"count": 3}
    resolve_inputs(program, given)
    assert given == {"count": 3}


def test_an_integer_is_a_number_but_a_number_is_not_an_integer(program: Program) -> None:
    assert resolve_inputs(program, {"count": 3, "ratio": 2})["ratio"] == 2
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, {"count": 2.5})
    assert str(caught.value) == "input 'count': 2.5 is not of type 'integer'"


def test_a_missing_input_says_how_to_pass_it(program: Program) -> None:
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, {})
    assert str(caught.value) == "missing input 'count' (integer); pass it with -i count=..."


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"count": "three"}, "input 'count': 'three' is not of type 'integer'"),
        ({"count": 1, "loud": "yes"}, "input 'loud': 'yes' is not of type 'boolean'"),
        ({"count": 1, "tags": ["ok", 2]}, "input 'tags': 2 is not of type 'string'"),
        ({"count": 1, "mood": "angry"}, "input 'mood': 'angry' is not one of ['calm', 'busy']"),
        ({"count": 1, "extra": [1]}, "input 'extra': [1] is not of type 'object'"),
        ({"count": None}, "input 'count': None is not of type 'integer'"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused(
    program: Program, given: dict[str, Any], message: str
) -> None:
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, given)
    assert str(caught.value) == message


def test_an_unknown_input_gets_the_closest_declared_name(program: Program) -> None:
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, {"count": 1, "topik": "x"})
    text = str(caught.value)
    assert text.startswith("unknown input 'topik'")
    assert "did you mean 'topic'?" in text


def test_an_unknown_input_like_nothing_gets_no_suggestion(program: Program) -> None:
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, {"count": 1, "zzzzzz": "x"})
    text = str(caught.value)
    assert text.startswith("unknown input 'zzzzzz'")
    assert "did you mean" not in text


def test_every_problem_is_reported_at_once(program: Program) -> None:
    with pytest.raises(InputError) as caught:
        resolve_inputs(program, {"topik": "x", "loud": 3})
    problems = str(caught.value).split("; ")
    assert any(p.startswith("unknown input 'topik'") for p in problems)
    assert "missing input 'count' (integer); pass it with -i count=..." in str(caught.value)
    assert "input 'loud': 3 is not of type 'boolean'" in problems


def test_a_program_without_inputs_takes_none_and_refuses_any() -> None:
    program = loads("name: p\nnodes:\n  x: {kind: llm, prompt: hi}\n")
    assert resolve_inputs(program, {}) == {}
    with pytest.raises(InputError, match="unknown input 'topic'"):
        resolve_inputs(program, {"topic": "x"})
