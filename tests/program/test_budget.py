"""The `budget:` of a spec: optional positive limits, checked with located errors, and
the tightest of several budgets."""

from __future__ import annotations

import pytest

from taskloom.errors import SpecError, SpecErrors
from taskloom.program.budget import Budget, tightest
from taskloom.program.load import loads

SPEC = """\
name: b
budget: {budget}
nodes:
  a: {{kind: llm, prompt: hi}}
"""


def _problems(budget: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as caught:
        loads(SPEC.format(budget=budget), filename="b.yaml")
    error = caught.value
    errors = error.errors if isinstance(error, SpecErrors) else [error]
    return [e.render() for e in errors]


def test_a_spec_budget_loads_with_every_limit() -> None:
    program = loads(SPEC.format(
        budget="{tokens: 10, prompt_tokens: 8, generated_tokens: 4, llm_calls: 2, "
               "tool_calls: 3, wall_s: 1.5}"))
    assert program.budget == Budget(tokens=10, prompt_tokens=8, generated_tokens=4,
                                    llm_calls=2, tool_calls=3, wall_s=1.5)
    assert loads(SPEC.format(budget="null")).budget is None


def test_an_unknown_limit_is_located_with_a_did_you_mean() -> None:
    [problem] = _problems("{llm_call: 3}")
    assert problem.startswith("b.yaml:2:10: unknown field 'llm_call'")
    assert "did you mean 'llm_calls'?" in problem


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "many"])
def test_a_count_that_is_not_a_positive_whole_number_is_located(value: str) -> None:
    [problem] = _problems(f"{{llm_calls: {value}}}")
    assert problem.startswith("b.yaml:2:21:")


def test_wall_s_must_be_a_positive_finite_number() -> None:
    assert _problems("{wall_s: 0}")[0].startswith("b.yaml:2:18:")
    assert "finite" in _problems("{wall_s: .inf}")[0]


def test_the_tightest_budget_takes_the_lowest_of_each_limit() -> None:
    server = Budget(llm_calls=20, tokens=5000)
    spec = Budget(llm_calls=50, wall_s=10.0)
    run = Budget(tokens=100)
    assert tightest([server, spec, run, None]) == Budget(llm_calls=20, tokens=100, wall_s=10.0)
    assert tightest([None, None]) is None
    assert Budget().limits() == {} and Budget().is_empty()
