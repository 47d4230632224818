from __future__ import annotations

import textwrap
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.compile import (
    GraphStats,
    TaskGraph,
    ToolCatalog,
    compile_program,
    describe,
    format_reference,
)
from taskloom.program.load import loads
from taskloom.program.models import LLMNode, MapNode, Program, ToolNode

# ---------------------------------------------------------------- a tiny tool catalog


@dataclass(frozen=True)
class FakeTool:
    name: str
    input_schema: dict[str, Any] = field(default_factory=dict)

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        properties = self.input_schema.get("properties", {})
        given = [*literal_args, *templated]
        problems = [f"unknown argument '{a}'" for a in given if a not in properties]
        problems += [
            f"missing required argument '{r}'"
            for r in self.input_schema.get("required", [])
            if r not in given
        ]
        problems += [
            f"argument '{a}' must be a string"
            for a, v in literal_args.items()
            if properties.get(a, {}).get("type") == "string" and not isinstance(v, str)
        ]
        return problems


class FakeCatalog:
    def __init__(self, *tools: FakeTool) -> None:
        self._tools = {t.name: t for t in tools}

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> FakeTool:
        return self._tools[name]


CALCULATOR = FakeTool(
    "calculator",
    {"properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
TOOLS = FakeCatalog(CALCULATOR, FakeTool("search", {"properties": {"query": {"type": "string"}}}))


def _catalog_is_a_tool_catalog(catalog: ToolCatalog) -> None:
    """Static check (mypy) that the fake satisfies the protocol."""


_catalog_is_a_tool_catalog(TOOLS)


# ---------------------------------------------------------------- helpers

QUICKSTART = """\
name: quickstart
inputs:
  topic: {type: string, default: "solar power"}
  cities: {type: array, items: {type: string}}
  n: {type: integer}
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


def _compile(text: str, tools: ToolCatalog | None = TOOLS) -> TaskGraph:
    return compile_program(loads(textwrap.dedent(text), filename="spec.yaml"), tools)


def _errors(text: str, tools: ToolCatalog | None = TOOLS) -> list[SpecError]:
    with pytest.raises(SpecErrors) as caught:
        _compile(text, tools)
    return caught.value.errors


def _one(text: str, tools: ToolCatalog | None = TOOLS) -> SpecError:
    errors = _errors(text, tools)
    assert len(errors) == 1, [e.render() for e in errors]
    return errors[0]


def _at(error: SpecError) -> tuple[int, int]:
    assert error.location is not None and error.location.file == "spec.yaml"
    return (error.location.line, error.location.column)


# ---------------------------------------------------------------- the graph


def test_quickstart_edges_follow_references_and_after() -> None:
    graph = _compile(QUICKSTART)
    assert set(graph.graph.edges) == {
        ("pros", "summary"),
        ("per_city", "summary"),
        ("count", "summary"),
    }
    assert graph.graph.edges["count", "summary"]["via"] == "reference"  # `when` reads count
    assert graph.dependencies("summary") == ("pros", "count", "per_city")
    assert graph.dependencies("pros") == ()
    assert graph.dependents("count") == ("summary",)
    assert graph.topological_order() == ["pros", "count", "per_city", "summary"]


def test_after_alone_makes_an_edge() -> None:
    graph = _compile(
        """\
        name: p
        nodes:
          a: {kind: llm, prompt: one}
          b: {kind: llm, prompt: two, after: [a]}
        """
    )
    assert graph.dependencies("b") == ("a",)
    assert graph.graph.edges["a", "b"]["via"] == "after"


def test_stats_count_levels_width_and_the_critical_path() -> None:
    stats = _compile(QUICKSTART).stats
    assert stats == GraphStats(
        node_count=4,
        edge_count=3,
        levels=2,
        widest_level=3,
        critical_path=("pros", "summary"),
    )
    assert describe(stats) == (
        "4 nodes, 3 edges; 2 levels, widest 3; critical path (2): pros -> summary"
    )


def test_stats_of_a_chain() -> None:
    stats = _compile(
        """\
        name: chain
        nodes:
          a: {kind: llm, prompt: go}
          b: {kind: llm, prompt: "{{ a }}"}
          c: {kind: llm, prompt: "{{ b }}"}
          side: {kind: llm, prompt: "{{ a }}"}
        """
    ).stats
    assert (stats.levels, stats.widest_level, stats.critical_path) == (3, 2, ("a", "b", "c"))


def test_describe_an_empty_graph() -> None:
    assert describe(GraphStats(0, 0, 0, 0, ())) == (
        "0 nodes, 0 edges; 0 levels, widest 0; critical path (0): (empty)"
    )


def test_a_python_program_compiles_without_a_source_map() -> None:
    program = Program(
        name="p",
        nodes={
            "a": LLMNode(prompt="hi"),
            "b": ToolNode(tool="calculator", args={"expression": "{{ a }}"}),
        },
    )
    assert compile_program(program, TOOLS).dependencies("b") == ("a",)
    bad = Program(name="p", nodes={"a": LLMNode(prompt="{{ nope }}")})
    with pytest.raises(SpecErrors) as caught:
        compile_program(bad)
    assert caught.value.errors[0].location is None
    assert caught.value.errors[0].node == "a"


def test_unknown_node_lookups_raise_key_error() -> None:
    with pytest.raises(KeyError):
        _compile(QUICKSTART).dependencies("ghost")


def test_format_reference() -> None:
    assert format_reference(("outline", "sections", 0, "title")) == "outline.sections[0].title"


# ---------------------------------------------------------------- reference errors


def test_unknown_node_reference_suggests_a_node() -> None:
    error = _one(
        """\
        name: p
        nodes:
          summary: {kind: llm, prompt: hi}
          b:
            kind: llm
            prompt: "{{ sumary }}"
        """
    )
    assert error.message == "'sumary' is not a node or `inputs`"
    assert (_at(error), error.node, error.hint) == ((6, 13), "b", "did you mean 'summary'?")


def test_unknown_input_suggests_a_declared_one() -> None:
    error = _one(
        """\
        name: p
        inputs: {topic: {type: string}}
        nodes:
          a: {kind: llm, prompt: "{{ inputs.topc }}"}
        """
    )
    assert error.message == "unknown input 'topc'"
    assert (_at(error), error.hint) == ((4, 26), "did you mean 'topic'?")


def test_field_missing_from_the_output_schema() -> None:
    error = _one(
        """\
        name: p
        nodes:
          outline:
            kind: llm
            prompt: plan
            output_schema:
              type: object
              properties:
                sections: {type: array, items: {type: object, properties: {title: {type: string}}}}
          draft:
            kind: llm
            prompt: "{{ outline.sections[0].titel }}"
        """
    )
    assert error.message == "outline.sections[0] has no field 'titel'"
    assert (_at(error), error.node, error.hint) == ((12, 13), "draft", "did you mean 'title'?")


def test_known_schema_fields_and_free_form_objects_pass() -> None:
    _compile(
        """\
        name: p
        inputs: {cfg: {type: object}}
        nodes:
          outline:
            kind: llm
            prompt: plan
            output_schema:
              type: object
              properties: {sections: {type: array, items: {type: string}}}
              additionalProperties: true
          draft:
            kind: llm
            prompt: "{{ outline.sections[2] }} {{ outline.extra.deep }} {{ inputs.cfg.any.x }}"
        """
    )


def test_a_text_output_has_no_fields() -> None:
    error = _one(
        """\
        name: p
        nodes:
          pros: {kind: llm, prompt: hi}
          b: {kind: llm, prompt: "{{ pros.title }} {{ pros[0] }} {{ pros.upper() }}"}
        """
    )
    assert error.message == "pros is a string, so it has no field 'title'"
    assert error.hint is not None and "no output_schema" in error.hint


def test_a_scalar_input_has_no_fields() -> None:
    error = _one(
        """\
        name: p
        inputs: {n: {type: integer}}
        nodes:
          a: {kind: llm, prompt: "{{ inputs.n.value }}"}
        """
    )
    assert error.message == "inputs.n is an integer, so it has no field 'value'"


def test_sampled_and_mapped_outputs_are_lists() -> None:
    errors = _errors(
        """\
        name: p
        inputs: {xs: {type: array}}
        nodes:
          votes: {kind: llm, prompt: hi, n: 3}
          each:
            kind: map
            over: "{{ inputs.xs }}"
            node:
              kind: llm
              prompt: "{{ item }}"
              output_schema: {type: object, properties: {a: {type: string}}}
          use:
            kind: llm
            prompt: "{{ votes[1] }} {{ each[0].a }} {{ each[0].b }} {{ votes.best }}"
        """
    )
    assert [e.message for e in errors] == [
        "each[0] has no field 'b'",
        "votes is an array, so it has no field 'best'",
    ]


def test_tool_outputs_are_not_checked() -> None:
    _compile(
        """\
        name: p
        nodes:
          t: {kind: tool, tool: search, args: {query: x}}
          a: {kind: llm, prompt: "{{ t.hits[0].url }}"}
        """
    )


def test_map_body_names_are_bound_only_inside_the_map() -> None:
    error = _one(
        """\
        name: p
        inputs: {cities: {type: array}}
        nodes:
          each:
            kind: map
            over: "{{ inputs.cities }}"
            as: city
            node: {kind: llm, prompt: "{{ city.name }} #{{ index }}"}
          after_map: {kind: llm, prompt: "{{ city }}"}
        """
    )
    assert (error.message, error.node, _at(error)) == (
        "'city' is not a node or `inputs`",
        "after_map",
        (9, 34),
    )


def test_template_syntax_errors_are_located() -> None:
    error = _one(
        """\
        name: p
        nodes:
          a:
            kind: llm
            prompt: |
              first line
              {% for x in %}
        """
    )
    assert "template syntax error" in error.message
    assert "line 2 of the template" in error.message
    assert (_at(error), error.node) == ((5, 13), "a")  # the block scalar's `|`


def test_a_when_condition_is_checked_as_an_expression() -> None:
    errors = _errors(
        """\
        name: p
        nodes:
          a: {kind: llm, prompt: hi, when: "{{ cnt > 3 }}"}
          b: {kind: llm, prompt: hi, when: "a >"}
        """
    )
    assert [(e.node, _at(e)) for e in errors] == [("a", (3, 36)), ("b", (4, 36))]
    assert errors[0].message == "'cnt' is not a node or `inputs`"
    assert "syntax" in errors[1].message


def test_outputs_must_reference_known_nodes() -> None:
    error = _one(
        """\
        name: p
        nodes:
          summary: {kind: llm, prompt: hi}
        outputs:
          title: "{{ summry }}"
        """
    )
    assert (error.message, error.node, _at(error)) == (
        "'summry' is not a node or `inputs`",
        None,
        (5, 10),
    )
    assert error.hint == "did you mean 'summary'?"


def test_after_naming_an_unknown_node() -> None:
    error = _one(
        """\
        name: p
        nodes:
          first: {kind: llm, prompt: hi}
          b: {kind: llm, prompt: hi, after: [frist]}
        """
    )
    assert error.message == "`after` names unknown node 'frist'"
    assert (_at(error), error.hint) == ((4, 38), "did you mean 'first'?")


# ---------------------------------------------------------------- cycles


def test_a_cycle_is_named() -> None:
    error = _one(
        """\
        name: p
        nodes:
          start: {kind: llm, prompt: "{{ c }}"}
          b: {kind: llm, prompt: "{{ start }}"}
          c: {kind: llm, prompt: "{{ b }}", after: [start]}
        """
    )
    assert error.message == "dependency cycle: start -> b -> c -> start"
    assert (_at(error), error.node) == ((3, 3), "start")


def test_a_node_reading_itself_is_a_cycle() -> None:
    error = _one("name: p\nnodes:\n  a: {kind: llm, prompt: '{{ a }}'}\n")
    assert error.message == "dependency cycle: a -> a"


def test_separate_cycles_are_all_reported() -> None:
    errors = _errors(
        """\
        name: p
        nodes:
          a: {kind: llm, prompt: "{{ b }}"}
          b: {kind: llm, prompt: "{{ a }}"}
          c: {kind: llm, prompt: "{{ d }}"}
          d: {kind: llm, prompt: "{{ c }}"}
        """
    )
    assert [e.message for e in errors] == [
        "dependency cycle: a -> b -> a",
        "dependency cycle: c -> d -> c",
    ]


def test_a_long_chain_of_cycles_is_one_tangle_reported_once() -> None:
    # Each of 4,000 nodes reads both neighbours: 3,999 two-node cycles in one strongly
    # connected component. Finding and removing cycles one by one was quadratic here.
    size = 4000
    nodes = {
        f"n{i}": {
            "kind": "llm",
            "prompt": " ".join(f"{{{{ n{j} }}}}" for j in (i - 1, i + 1) if 0 <= j < size),
        }
        for i in range(size)
    }
    program = Program.model_validate({"name": "chain", "nodes": nodes})
    with pytest.raises(SpecErrors) as caught:
        compile_program(program)
    assert [(e.message, e.node) for e in caught.value.errors] == [
        ("dependency cycle: n0 -> n1 -> n0", "n0")
    ]


# ---------------------------------------------------------------- tools


def test_unknown_tool_suggests_a_known_one() -> None:
    error = _one(
        """\
        name: p
        nodes:
          t: {kind: tool, tool: calculater, args: {expression: "1"}}
        """
    )
    assert error.message == "unknown tool 'calculater'"
    assert (_at(error), error.node, error.hint) == ((3, 25), "t", "did you mean 'calculator'?")


def test_tools_are_not_checked_without_a_catalog() -> None:
    _compile("name: p\nnodes:\n  t: {kind: tool, tool: anything, args: {x: 1}}\n", tools=None)


def test_tool_argument_problems_are_located_at_the_argument() -> None:
    errors = _errors(
        """\
        name: p
        nodes:
          t:
            kind: tool
            tool: calculator
            args:
              expresion: "2"
              extra: 1
        """
    )
    messages = {(e.message, _at(e)) for e in errors}
    assert messages == {
        ("tool 'calculator': unknown argument 'expresion'", (7, 18)),
        ("tool 'calculator': unknown argument 'extra'", (8, 14)),
        ("tool 'calculator': missing required argument 'expression'", (7, 7)),
    }
    assert all(e.hint == "tool 'calculator' takes: expression" for e in errors)


def test_templated_arguments_are_passed_by_name_only() -> None:
    seen: list[tuple[dict[str, Any], list[str]]] = []

    @dataclass(frozen=True)
    class RecordingTool(FakeTool):
        def check_static_args(
            self, literal_args: Mapping[str, Any], templated: Collection[str]
        ) -> list[str]:
            seen.append((dict(literal_args), list(templated)))
            return []

    _compile(
        """\
        name: p
        inputs: {q: {type: string}}
        nodes:
          t:
            kind: tool
            tool: rec
            args: {query: "{{ inputs.q }}", limit: 3, opts: ["{{ inputs.q }}"]}
        """,
        tools=FakeCatalog(RecordingTool("rec")),
    )
    assert seen == [({"limit": 3}, ["query", "opts"])]


def test_a_tool_inside_a_map_is_checked() -> None:
    error = _one(
        """\
        name: p
        inputs: {xs: {type: array}}
        nodes:
          each:
            kind: map
            over: "{{ inputs.xs }}"
            node: {kind: tool, tool: serch, args: {query: "{{ item }}"}}
        """
    )
    assert (error.message, error.node, error.hint) == (
        "unknown tool 'serch'",
        "each",
        "did you mean 'search'?",
    )


# ---------------------------------------------------------------- maps


@pytest.mark.parametrize(
    ("over", "message", "hint"),
    [
        (
            "{{ inputs.topic }}",
            "inputs.topic is a string",
            "declare input 'topic' with `type: array`",
        ),
        ("{{ text }}", "text is a string", "give node 'text' an output_schema whose type is array"),
        (
            "{{ obj.count }}",
            "obj.count is an integer",
            "give node 'obj' an output_schema whose type is array",
        ),
    ],
)
def test_map_over_something_known_not_to_be_a_list(over: str, message: str, hint: str) -> None:
    spec = """\
        name: p
        inputs: {topic: {type: string}}
        nodes:
          text: {kind: llm, prompt: hi}
          obj:
            kind: llm
            prompt: hi
            output_schema: {type: object, properties: {count: {type: integer}}}
          each:
            kind: map
            over: "OVER"
            node: {kind: llm, prompt: "{{ item }}"}
        """
    error = _one(spec.replace("OVER", over))
    assert error.message == f"`over` must be a list, but {message}"
    assert (_at(error), error.node, error.hint) == ((11, 11), "each", hint)


def test_map_over_lists_or_unknowns_is_allowed() -> None:
    graph = _compile(
        """\
        name: p
        inputs: {xs: {type: array}}
        nodes:
          tool_out: {kind: tool, tool: search, args: {query: x}}
          listed: {kind: llm, prompt: hi, output_schema: {type: array, items: {type: string}}}
          m1: {kind: map, over: "{{ inputs.xs }}", node: {kind: llm, prompt: "{{ item }}"}}
          m2: {kind: map, over: "{{ tool_out }}", node: {kind: llm, prompt: "{{ item }}"}}
          m3: {kind: map, over: "{{ listed }}", node: {kind: llm, prompt: "{{ item }}"}}
          m4: {kind: map, over: "{{ m1 }}", node: {kind: llm, prompt: "{{ item }}"}}
          m5: {kind: map, over: "{{ inputs.xs | reverse | list }}", node: {kind: llm, prompt: x}}
        """
    )
    assert graph.dependencies("m4") == ("m1",)


def test_map_over_a_plain_string_is_refused() -> None:
    error = _one(
        """\
        name: p
        nodes:
          each: {kind: map, over: "a, b, c", node: {kind: llm, prompt: "{{ item }}"}}
        """
    )
    assert error.message == "`over` must be a list, or a template that gives one"


def test_map_item_name_must_not_hide_a_node() -> None:
    error = _one(
        """\
        name: p
        inputs: {xs: {type: array}}
        nodes:
          pros: {kind: llm, prompt: hi}
          each:
            kind: map
            over: "{{ inputs.xs }}"
            as: pros
            node: {kind: llm, prompt: "{{ pros }}"}
        """
    )
    assert error.message == "`as: pros` hides node 'pros' inside the map"
    # `pros` inside the body is the item, so it is not an edge.
    assert error.node == "each"


# ---------------------------------------------------------------- other checks


def test_llm_node_needs_a_prompt_or_messages() -> None:
    error = _one("name: p\nnodes:\n  a: {kind: llm, system: be brief}\n")
    assert error.message == "an llm node needs a `prompt` or `messages`"
    assert _at(error) == (3, 3)


def test_messages_are_templates_too() -> None:
    error = _one(
        """\
        name: p
        nodes:
          a:
            kind: llm
            messages:
              - {role: system, content: be brief}
              - {role: user, content: "{{ ghost }}"}
        """
    )
    assert (error.message, _at(error)) == ("'ghost' is not a node or `inputs`", (7, 31))


def test_output_schema_must_be_a_json_schema() -> None:
    error = _one("name: p\nnodes:\n  a: {kind: llm, prompt: hi, output_schema: {type: objekt}}\n")
    assert error.message.startswith("output_schema is not a valid JSON schema")
    assert _at(error) == (3, 45)


def test_node_ids_may_not_hide_template_functions() -> None:
    error = _one("name: p\nnodes:\n  range: {kind: llm, prompt: hi}\n")
    assert error.message == "node id 'range' hides the template function 'range'"


def test_every_problem_is_reported_in_file_order() -> None:
    errors = _errors(
        """\
        name: p
        inputs: {topic: {type: string}}
        nodes:
          a: {kind: llm, prompt: "{{ inputs.topc }} {{ bb }}"}
          b: {kind: tool, tool: nope}
          c: {kind: llm, prompt: "{{ a.x }}", after: [zz]}
        outputs:
          out: "{{ q }}"
        """
    )
    assert [_at(e)[0] for e in errors] == [4, 4, 5, 6, 6, 8]
    assert len({e.message for e in errors}) == 6


def test_the_error_text_shows_file_line_node_and_hint() -> None:
    with pytest.raises(SpecErrors) as caught:
        _compile(
            "name: p\nnodes:\n  a: {kind: llm, prompt: '{{ b }}'}\n  bb: {kind: llm, prompt: x}\n"
        )
    assert str(caught.value) == (
        "spec.yaml:3:26: node 'a': 'b' is not a node or `inputs`\n  hint: did you mean 'bb'?"
    )


def test_compiled_python_and_yaml_programs_have_the_same_graph() -> None:
    from_yaml = _compile(QUICKSTART)
    in_python = compile_program(
        Program.model_validate(from_yaml.program.model_dump(by_alias=True)), TOOLS
    )
    assert in_python.program._source is None
    assert set(in_python.graph.edges) == set(from_yaml.graph.edges)
    assert in_python.stats == from_yaml.stats
    assert isinstance(in_python.program.nodes["per_city"], MapNode)


# ---------------------------------------------------------------- the spec's policy


def test_an_unknown_scheduling_policy_is_located_and_suggests_a_name() -> None:
    error = _one(
        """\
        name: p
        policy: atlass
        nodes:
          a: {kind: llm, prompt: hi}
        """
    )
    assert "unknown scheduling policy 'atlass'" in error.message
    assert _at(error) == (2, 9)
    assert "did you mean 'atlas'" in error.message


def test_a_known_scheduling_policy_compiles() -> None:
    graph = _compile(
        """\
        name: p
        policy: atlas
        nodes:
          a: {kind: llm, prompt: hi}
        """
    )
    assert graph.program.policy == "atlas"
