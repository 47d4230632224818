from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from taskloom.errors import SourceLocation, SpecError, SpecErrors
from taskloom.program.load import SourceMap, load, loads
from taskloom.program.models import (
    Defaults,
    InputSpec,
    LLMNode,
    MapNode,
    Program,
    ToolNode,
)

QUICKSTART = textwrap.dedent(
    """\
    name: quickstart
    inputs:
      topic: {type: string, default: "solar power"}
      cities: {type: array, items: {type: string}}
    defaults: {max_tokens: 64, temperature: 0}
    nodes:
      pros:
        kind: llm
        prompt: "Give one advantage of {{ inputs.topic }}."
      count:
        kind: tool
        tool: calculator
        args: {expression: "{{ inputs.n }} * 2"}
      per_city:
        kind: map
        over: "{{ inputs.cities }}"
        as: city
        node: {kind: llm, prompt: "Describe {{ city }} in {{ index }} words"}
      summary:
        kind: llm
        prompt: "Summarize: {{ pros }} {{ per_city[0] }}"
        output_schema: {type: object, properties: {title: {type: string}}, required: [title]}
        when: "count > 3"
        after: [count]
    outputs:
      title: "{{ summary.title }}"
    """
)


def _quickstart_in_python() -> Program:
    return Program(
        name="quickstart",
        inputs={
            "topic": InputSpec(type="string", default="solar power"),
            "cities": InputSpec(type="array", items={"type": "string"}),
        },
        defaults=Defaults(max_tokens=64, temperature=0),
        nodes={
            "pros": LLMNode(prompt="Give one advantage of {{ inputs.topic }}."),
            "count": ToolNode(tool="calculator", args={"expression": "{{ inputs.n }} * 2"}),
            "per_city": MapNode(
                over="{{ inputs.cities }}",
                item_name="city",
                node=LLMNode(prompt="Describe {{ city }} in {{ index }} words"),
            ),
            "summary": LLMNode(
                prompt="Summarize: {{ pros }} {{ per_city[0] }}",
                output_schema={
                    "type": "object",
                    "properties": {"title": {"type": "string"}},
                    "required": ["title"],
                },
                when="count > 3",
                after=["count"],
            ),
        },
        outputs={"title": "{{ summary.title }}"},
    )


def _spec(text: str) -> str:
    return textwrap.dedent(text)


def _one_error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        loads(_spec(text), filename="spec.yaml")
    return caught.value


def _all_errors(text: str) -> list[SpecError]:
    with pytest.raises(SpecErrors) as caught:
        loads(_spec(text), filename="spec.yaml")
    return caught.value.errors


def _at(error: SpecError) -> tuple[int, int]:
    assert error.location is not None
    assert error.location.file == "spec.yaml"
    return (error.location.line, error.location.column)


# ---------------------------------------------------------------- loading


def test_yaml_and_python_build_the_same_program() -> None:
    loaded = loads(QUICKSTART)
    assert loaded == _quickstart_in_python()
    assert isinstance(loaded.nodes["per_city"], MapNode)
    assert loaded.nodes["per_city"].item_name == "city"


def test_load_reads_a_file_and_remembers_its_name(tmp_path: Path) -> None:
    spec = tmp_path / "quick.yaml"
    spec.write_text(QUICKSTART, encoding="utf-8")
    program = load(spec)
    assert program == _quickstart_in_python()
    assert isinstance(program._source, SourceMap)
    assert program._source.file == str(spec)


def test_python_programs_have_no_source_map() -> None:
    assert _quickstart_in_python()._source is None


def test_source_map_locates_values_keys_and_falls_back_to_parents() -> None:
    source = loads(QUICKSTART, filename="q.yaml")._source
    assert isinstance(source, SourceMap)
    assert source.locate(("nodes", "pros", "prompt")) == SourceLocation("q.yaml", 9, 13)
    assert source.locate_key(("nodes", "pros", "prompt")) == SourceLocation("q.yaml", 9, 5)
    assert source.locate(("nodes", "summary", "after", 0)) == SourceLocation("q.yaml", 24, 13)
    assert source.locate(("nodes", "per_city", "node", "prompt")).line == 18
    # A path that was never written points at where its parent is named.
    assert source.locate(("nodes", "pros", "max_tokens")) == SourceLocation("q.yaml", 7, 3)
    assert source.locate(()) == SourceLocation("q.yaml", 1, 1)


def test_anchors_and_merge_keys_load_without_false_duplicates() -> None:
    program = loads(
        _spec(
            """\
            name: merged
            nodes:
              first: &base {kind: llm, prompt: "hi", max_tokens: 8}
              second:
                <<: *base
                prompt: "bye"
            """
        )
    )
    second = program.nodes["second"]
    assert isinstance(second, LLMNode)
    assert (second.prompt, second.max_tokens) == ("bye", 8)


# ---------------------------------------------------------------- file and YAML errors


def test_missing_file_is_a_clear_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found") as caught:
        load(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(caught.value)


def test_a_directory_is_not_a_spec(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="directory"):
        load(tmp_path)


def test_malformed_yaml_is_located_at_the_yaml_mark() -> None:
    error = _one_error(
        """\
        name: broken
        nodes:
          a:
            kind: llm
            prompt: "unterminated
        """
    )
    assert "invalid YAML" in error.message
    assert _at(error)[0] == 6
    assert error.hint


def test_unquoted_template_gets_a_quoting_hint() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          a:
            kind: llm
            prompt: {{ inputs.topic }}
        """
    )
    assert _at(error) == (5, 14)
    assert error.hint is not None and "quoted" in error.hint


def test_tabs_get_a_hint() -> None:
    error = _one_error("name: q\nnodes:\n  a:\n\tkind: llm\n")
    assert _at(error) == (4, 1)
    assert error.hint is not None and "tabs" in error.hint


def test_two_documents_are_refused() -> None:
    error = _one_error("name: a\nnodes: {}\n---\nname: b\n")
    assert "single document" in error.message
    assert _at(error) == (3, 1)


@pytest.mark.parametrize(("text", "words"), [("- a\n- b\n", "list"), ("", "empty")])
def test_the_top_level_must_be_a_mapping(text: str, words: str) -> None:
    error = _one_error(text)
    assert words in error.message
    assert _at(error) == (1, 1)


def test_duplicate_keys_are_reported_at_the_second_key() -> None:
    error = _one_error(
        """\
        name: dup
        nodes:
          a: {kind: llm, prompt: x}
          a: {kind: llm, prompt: y}
        """
    )
    assert "duplicate key 'a'" in error.message
    assert _at(error) == (4, 3)


# ---------------------------------------------------------------- validation errors


def test_unknown_field_points_at_the_key_and_suggests_a_name() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          pros:
            kind: llm
            promt: "hi"
        """
    )
    assert error.message == "unknown field 'promt'"
    assert _at(error) == (5, 5)
    assert error.node == "pros"
    assert error.hint == "did you mean 'prompt'?"


def test_unknown_field_without_a_close_match_lists_the_fields() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          t: {kind: tool, tool: calculator, zzz: 1}
        """
    )
    assert error.message == "unknown field 'zzz'"
    assert _at(error) == (3, 37)
    assert error.hint is not None and "tool node" in error.hint and "args" in error.hint


def test_unknown_field_inside_a_map_body_uses_the_body_model() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          each:
            kind: map
            over: "{{ inputs.xs }}"
            node:
              kind: tool
              tool: calculator
              arg: {}
        """
    )
    assert error.message == "unknown field 'arg'"
    assert _at(error) == (9, 7)
    assert error.node == "each"
    assert error.hint == "did you mean 'args'?"


def test_unknown_top_level_and_defaults_fields_have_no_node() -> None:
    errors = _all_errors(
        """\
        name: q
        defaults: {max_token: 5}
        nodez: {}
        """
    )
    messages = [(e.message, _at(e), e.node, e.hint) for e in errors]
    assert messages == [
        ("missing required field 'nodes' in the program", (1, 1), None, messages[0][3]),
        ("unknown field 'max_token'", (2, 12), None, "did you mean 'max_tokens'?"),
        ("unknown field 'nodez'", (3, 1), None, "did you mean 'nodes'?"),
    ]


def test_missing_required_field_points_at_the_node() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          count:
            kind: tool
            args: {expression: "1 + 1"}
        """
    )
    assert error.message == "missing required field 'tool' in a tool node"
    assert _at(error) == (3, 3)
    assert error.node == "count"
    assert error.hint is not None and "tool: calculator" in error.hint


def test_wrong_type_names_the_field_and_what_was_given() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          a:
            kind: llm
            prompt: hi
            max_tokens: lots
        """
    )
    assert error.message.startswith("'max_tokens': Input should be a valid integer")
    assert _at(error) == (6, 17)
    assert error.node == "a"
    assert error.hint is not None and "'lots'" in error.hint


def test_bad_choice_suggests_the_closest_allowed_value() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          a: {kind: llm, prompt: hi, on_error: skp}
        """
    )
    assert "'on_error'" in error.message
    assert _at(error) == (3, 40)
    assert error.hint == "did you mean 'skip'?"


def test_unknown_kind_points_at_the_kind_value() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          a:
            prompt: hi
            kind: lm
        """
    )
    assert error.message == "unknown node kind 'lm'"
    assert _at(error) == (5, 11)
    assert error.node == "a"
    assert error.hint is not None and error.hint.startswith("did you mean 'llm'?")


def test_missing_kind_guesses_the_kind() -> None:
    error = _one_error(
        """\
        name: q
        nodes:
          a:
            tool: calculator
        """
    )
    assert error.message == "the node has no `kind`"
    assert _at(error) == (3, 3)
    assert error.hint is not None and "kind: tool" in error.hint


def test_a_node_that_is_not_a_mapping() -> None:
    error = _one_error("name: q\nnodes:\n  a: just text\n")
    assert "must be a mapping" in error.message
    assert _at(error) == (3, 6)
    assert error.node == "a"


def test_bad_node_id_points_at_the_id() -> None:
    error = _one_error("name: q\nnodes:\n  ok: {kind: llm, prompt: x}\n  1st: {kind: llm}\n")
    assert "node id '1st'" in error.message
    assert _at(error) == (4, 3)
    assert error.node == "1st"


def test_several_problems_are_reported_together_in_file_order() -> None:
    errors = _all_errors(
        """\
        name: q
        nodes:
          b:
            kind: tool
          a:
            kind: llm
            promt: hi
        """
    )
    assert [(e.node, _at(e)) for e in errors] == [("b", (3, 3)), ("a", (7, 5))]
    assert all(isinstance(e, SpecError) for e in errors)
