from __future__ import annotations

from typing import Any

import pytest

from taskloom.errors import TaskloomError
from taskloom.program.refs import (
    TemplateError,
    evaluate_condition,
    expression_references,
    is_templated,
    render_template,
    render_value,
    sole_reference,
    template_references,
    value_references,
)

CONTEXT: dict[str, Any] = {
    "inputs": {"topic": "solar power", "cities": ["Oslo", "Lima"], "n": 3},
    "outline": {"title": "Sun", "sections": [{"heading": "Intro"}, {"heading": "Cost"}]},
    "pros": "cheap",
    "count": 6,
}


# ---------------------------------------------------------------- references


def test_reference_paths_follow_attributes_and_constant_indexes() -> None:
    refs = template_references("{{ inputs.topic }} {{ outline.sections[0].heading }} {{ x.1 }}")
    assert refs == [("inputs", "topic"), ("outline", "sections", 0, "heading"), ("x", 1)]


def test_string_subscripts_are_fields_too() -> None:
    assert template_references("{{ outline['title'] }}") == [("outline", "title")]


def test_references_keep_first_use_order_without_repeats() -> None:
    refs = template_references("{{ b }} {{ a }} {{ b }} {{ a.x }}")
    assert refs == [("b",), ("a",), ("a", "x")]


def test_loop_and_set_variables_are_not_references() -> None:
    template = (
        "{% for s in outline.sections %}{{ loop.index }}. {{ s.heading }}{% endfor %}"
        "{% set t = pros %}{{ t | upper }}"
    )
    assert template_references(template) == [("outline", "sections"), ("pros",)]


def test_computed_index_stops_the_path_and_reads_the_index() -> None:
    refs = template_references("{{ outline.sections[inputs.n].heading }}")
    assert refs == [("inputs", "n"), ("outline", "sections")]


def test_method_calls_read_the_receiver_not_a_field() -> None:
    assert template_references("{{ pros.upper() }} {{ pros.split(sep) }}") == [
        ("pros",),
        ("sep",),
    ]


def test_template_globals_and_literals_are_not_references() -> None:
    assert template_references("{% for i in range(3) %}{{ i }}{% endfor %}{{ true }}") == []


def test_filters_and_tests_keep_their_operands_as_references() -> None:
    refs = template_references(
        "{{ inputs.cities | join(sep) }}{% if pros is defined %}x{% endif %}"
    )
    assert refs == [("inputs", "cities"), ("sep",), ("pros",)]


def test_expression_references_accept_bare_and_wrapped_conditions() -> None:
    assert expression_references("count > 3 and inputs.n") == [("count",), ("inputs", "n")]
    assert expression_references("{{ count > 3 }}") == [("count",)]


def test_expression_with_trailing_garbage_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError, match="syntax"):
        expression_references("count > 3 pros")


def test_value_references_walk_nested_values_but_not_keys() -> None:
    value = {"{{ not_a_ref }}": ["{{ a }}", {"deep": "{{ b.c }} {{ a }}"}], "n": 3}
    assert value_references(value) == [("a",), ("b", "c")]


def test_template_syntax_error_carries_the_template_line() -> None:
    with pytest.raises(TemplateError) as caught:
        template_references("line one\n{{ broken ")
    assert caught.value.line == 2
    assert isinstance(caught.value, TaskloomError)


def test_sole_reference_only_for_one_plain_reference() -> None:
    assert sole_reference("{{ inputs.cities }}") == ("inputs", "cities")
    assert sole_reference("  {{ outline.sections }}\n") == ("outline", "sections")
    assert sole_reference("{{ inputs.cities | reverse }}") is None
    assert sole_reference("cities: {{ inputs.cities }}") is None


def test_is_templated_looks_inside_values() -> None:
    assert is_templated({"a": ["x", "{{ y }}"]})
    assert is_templated("{% if a %}b{% endif %}")
    assert not is_templated({"a": [1, "plain"]})


# ---------------------------------------------------------------- rendering


def test_render_template_fills_references() -> None:
    text = render_template("{{ outline.title }}: {{ outline.sections[1].heading }}", CONTEXT)
    assert text == "Sun: Cost"


def test_render_template_does_not_escape_html() -> None:
    assert render_template("{{ v }}", {"v": "<b>&</b>"}) == "<b>&</b>"


@pytest.mark.parametrize(
    "template",
    ["{{ missing }}", "{{ inputs.missing }}", "{{ outline.sections[5] }}", "{{ pros.x.y }}"],
)
def test_undefined_names_and_fields_fail_loudly(template: str) -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render_template(template, CONTEXT)


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ pros.__class__.__subclasses__() }}",
        "{{ inputs.cities.append('x') }}",
    ],
)
def test_the_sandbox_refuses_unsafe_access(template: str) -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        render_template(template, CONTEXT)
    with pytest.raises(TemplateError, match="sandbox"):
        render_value(template, CONTEXT)
    assert CONTEXT["inputs"]["cities"] == ["Oslo", "Lima"]


def test_runtime_failures_become_template_errors() -> None:
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render_template("{{ 1 / 0 }}", CONTEXT)


def test_render_value_keeps_native_types_for_a_sole_expression() -> None:
    value = {
        "cities": "{{ inputs.cities }}",
        "double": "{{ inputs.n * 2 }}",
        "block": "{{ inputs.n }}\n",
        "text": "n is {{ inputs.n }}",
        "items": ["{{ outline.sections[0] }}", 4, None],
    }
    assert render_value(value, CONTEXT) == {
        "cities": ["Oslo", "Lima"],
        "double": 6,
        "block": 3,
        "text": "n is 3",
        "items": [{"heading": "Intro"}, 4, None],
    }


def test_render_value_leaves_plain_strings_alone() -> None:
    assert render_value("no templates { here }", CONTEXT) == "no templates { here }"


def test_render_value_rejects_an_undefined_inside_a_native_value() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        render_value("{{ [inputs.n, inputs.nope] }}", CONTEXT)


def test_render_value_of_two_expressions_is_text() -> None:
    assert render_value("{{ inputs.n }}{{ inputs.n }}", CONTEXT) == "33"


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("count > 3", True),
        ("{{ count > 10 }}", False),
        ("pros == 'cheap' and inputs.cities", True),
        ("inputs.cities | length > 5", False),
    ],
)
def test_evaluate_condition(condition: str, expected: bool) -> None:
    assert evaluate_condition(condition, CONTEXT) is expected


def test_a_condition_on_an_undefined_name_fails() -> None:
    with pytest.raises(TemplateError, match="undefined"):
        evaluate_condition("nope > 1", CONTEXT)
