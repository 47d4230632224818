"""The `tool` kind: arguments rendered with their types kept, tools checked by name and
signature before the run."""

from __future__ import annotations

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import SpecErrors
from taskloom.orchestrator.compile import compile_program
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@tool
def total(values: list[int], scale: int = 1) -> int:
    """Add up.

    Args:
        values: the numbers.
        scale: a factor.
    """
    return sum(values) * scale


@pytest.mark.anyio
async def test_arguments_render_and_keep_their_types() -> None:
    spec = """
name: t
inputs:
  xs: {type: array, default: [1, 2, 3]}
nodes:
  sum: {kind: tool, tool: total, args: {values: "{{ inputs.xs }}", scale: 10}}
"""
    result = await Runtime(ScriptedBackend(), tools=ToolRegistry([total])).run(loads(spec))
    assert result.nodes["sum"].output == 60


def test_an_unknown_tool_and_a_bad_argument_are_located() -> None:
    spec = """\
name: t
nodes:
  a: {kind: tool, tool: calculater, args: {expression: "1"}}
  b: {kind: tool, tool: calculator, args: {expresion: "1"}}
"""
    with pytest.raises(SpecErrors) as caught:
        compile_program(loads(spec), default_registry())
    unknown, missing, misspelt = caught.value.errors
    assert (unknown.message, unknown.hint) == (
        "unknown tool 'calculater'", "did you mean 'calculator'?"
    )
    assert missing.message == "tool 'calculator': missing required argument 'expression'"
    assert misspelt.message == (
        "tool 'calculator': no argument 'expresion'; did you mean 'expression'?"
    )
    assert misspelt.hint == "tool 'calculator' takes: expression"
    lines = [e.location.line if e.location else None for e in caught.value.errors]
    assert lines == [3, 4, 4]
