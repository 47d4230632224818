"""The node-kind seam: a kind added by a test, with no edit to the core, is loaded,
checked, drawn into the graph and run like a built-in one; and it is gone afterwards."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.kinds import (
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    TemplateSite,
    UnknownNodeKind,
    node_kinds,
)
from taskloom.orchestrator.kinds.base import JsonSchema, SpecPath
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.orchestrator.result import RunStatus
from taskloom.program.load import loads
from taskloom.program.refs import render_template
from taskloom.program.spec_model import NodeBase
from taskloom.runtime import Runtime


class ShoutNode(NodeBase):
    """A toy kind: upper-cases a rendered text."""

    kind: Literal["shout"] = "shout"
    text: str


class ShoutKind(NodeKind[ShoutNode]):
    name = "shout"
    model = ShoutNode

    def template_sites(
        self, node: ShoutNode, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        yield TemplateSite((*path, "text"), node.text, bound=bound)

    def output_schema(self, node: ShoutNode, kinds: KindLookup) -> JsonSchema | None:
        return {"type": "object", "properties": {"loud": {"type": "string"}}}

    def check(self, node_id: str, node: ShoutNode, path: SpecPath, checks: NodeChecks) -> None:
        if not node.text.strip():
            checks.report("nothing to shout", (*path, "text"), node=node_id, hint="say something")

    async def run(
        self, node: ShoutNode, context: Mapping[str, Any], env: NodeEnvironment, ledger: CallLedger
    ) -> Any:
        return {"loud": render_template(node.text, context).upper()}


SPEC = """\
name: toy
inputs:
  word: {type: string, default: hello}
nodes:
  first: {kind: llm, prompt: "Say {{ inputs.word }}"}
  loud: {kind: shout, text: "{{ first }}!"}
  after: {kind: llm, prompt: "Heard {{ loud.loud }}"}
outputs:
  result: "{{ loud.loud }}"
"""


@pytest.fixture
def shout() -> Iterator[NodeKind[Any]]:
    with node_kinds.registered(ShoutKind()) as kind:
        yield kind


def _echo(request: GenerateRequest) -> str:
    assert request.messages is not None
    return request.messages[-1].content


@pytest.mark.anyio
async def test_a_registered_kind_loads_compiles_and_runs(shout: NodeKind[Any]) -> None:
    program = loads(SPEC)
    graph = compile_program(program)
    assert graph.dependencies("loud") == ("first",)
    assert graph.dependencies("after") == ("loud",)
    result = await Runtime(ScriptedBackend(respond=_echo)).run(program)
    assert result.status is RunStatus.SUCCEEDED
    assert result.outputs == {"result": "SAY HELLO!"}
    assert result.nodes["loud"].kind == "shout"
    assert result.nodes["after"].output == "Heard SAY HELLO!"


def test_the_kinds_checks_and_output_schema_are_used(shout: NodeKind[Any]) -> None:
    spec = SPEC.replace('text: "{{ first }}!"', 'text: " "').replace("loud.loud", "loud.quiet")
    with pytest.raises(SpecErrors) as caught:
        compile_program(loads(spec))
    messages = [(e.message, e.location.line if e.location else None) for e in caught.value.errors]
    assert ("nothing to shout", 6) in messages
    assert ("loud has no field 'quiet'", 7) in messages


def test_the_kind_is_gone_after_its_block() -> None:
    with node_kinds.registered(ShoutKind()):
        assert "shout" in node_kinds
    assert "shout" not in node_kinds
    with pytest.raises(SpecError) as caught:
        loads(SPEC)
    assert "shout" in str(caught.value)
    assert caught.value.location is not None and caught.value.location.line == 6


def test_an_unknown_kind_names_the_closest() -> None:
    with pytest.raises(UnknownNodeKind) as caught:
        node_kinds.get("mapp")
    assert str(caught.value) == (
        "unknown node kind 'mapp' (did you mean 'map'?); choose from llm, map, plan, tool"
    )


def test_a_kind_cannot_be_registered_twice(shout: NodeKind[Any]) -> None:
    with pytest.raises(ValueError, match="registered already"):
        node_kinds.register(ShoutKind())
