from __future__ import annotations

import pydantic
import pytest

from taskloom.program.models import (
    ChatMessage,
    Defaults,
    InputSpec,
    LLMNode,
    MapNode,
    Program,
    ToolNode,
)


def _program(**nodes: LLMNode | ToolNode | MapNode) -> Program:
    return Program(name="p", nodes=dict(nodes))


def test_node_kinds_come_from_the_kind_field() -> None:
    program = Program.model_validate(
        {
            "name": "p",
            "nodes": {
                "a": {"kind": "llm", "prompt": "hi"},
                "b": {"kind": "tool", "tool": "calculator", "args": {"expression": "1+1"}},
                "c": {"kind": "map", "over": "{{ inputs.xs }}", "node": {"kind": "llm"}},
            },
        }
    )
    assert [type(n) for n in program.nodes.values()] == [LLMNode, ToolNode, MapNode]
    body = program.nodes["c"]
    assert isinstance(body, MapNode) and isinstance(body.node, LLMNode)


def test_node_defaults() -> None:
    node = LLMNode(prompt="hi")
    assert (node.kind, node.n, node.retries, node.on_error, node.after) == ("llm", 1, 0, "fail", [])
    assert node.max_tokens is None and node.output_schema is None


def test_map_item_name_is_written_as_and_defaults_to_item() -> None:
    by_alias = MapNode.model_validate({"over": "{{ xs }}", "as": "city", "node": {"kind": "llm"}})
    by_name = MapNode(over="{{ xs }}", item_name="city", node=LLMNode())
    assert by_alias == by_name
    assert by_alias.item_name == "city"
    assert MapNode(over="{{ xs }}", node=LLMNode()).item_name == "item"


def test_models_are_frozen() -> None:
    node = LLMNode(prompt="hi")
    with pytest.raises(pydantic.ValidationError):
        node.prompt = "bye"  # type: ignore[misc]


def test_unknown_fields_are_rejected() -> None:
    with pytest.raises(pydantic.ValidationError, match="promt"):
        LLMNode.model_validate({"promt": "hi"})


@pytest.mark.parametrize("node_id", ["1abc", "with-dash", "has space", ""])
def test_node_ids_must_be_names(node_id: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="must be a name"):
        _program(**{node_id: LLMNode(prompt="x")})


@pytest.mark.parametrize("node_id", ["inputs", "item", "index", "loop", "none", "True"])
def test_reserved_node_ids_are_rejected(node_id: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="reserved"):
        _program(**{node_id: LLMNode(prompt="x")})


def test_equality_ignores_where_a_program_was_written() -> None:
    first = _program(a=LLMNode(prompt="hi"))
    second = _program(a=LLMNode(prompt="hi"))
    second._source = "somewhere.yaml"
    assert first == second
    assert hash(first) == hash(second)
    assert first != _program(a=LLMNode(prompt="bye"))


def test_bounds_are_validated() -> None:
    with pytest.raises(pydantic.ValidationError):
        Defaults(max_tokens=0)
    with pytest.raises(pydantic.ValidationError):
        Defaults(top_p=0)
    with pytest.raises(pydantic.ValidationError):
        LLMNode(n=0)
    with pytest.raises(pydantic.ValidationError):
        ToolNode(tool="t", timeout=0)


def test_chat_message_roles_are_limited() -> None:
    assert ChatMessage(role="system", content="be brief").role == "system"
    with pytest.raises(pydantic.ValidationError):
        ChatMessage.model_validate({"role": "tool", "content": "x"})


def test_input_json_schema_includes_only_what_was_given() -> None:
    assert InputSpec().json_schema() == {"type": "string"}
    cities = InputSpec(type="array", items={"type": "string"}, enum=[["a"]])
    assert cities.json_schema() == {"type": "array", "items": {"type": "string"}, "enum": [["a"]]}
