from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from taskloom.errors import TaskloomError
from taskloom.program.refs import (
    TemplateError,
    _render_text,
    evaluate_condition,
    expression_references,
    is_templated,
    render_template,
    render_value,
    sole_reference,
    template_references,
    value_references,
)
from taskloom.program.template_limits import set_template_limits, template_limits

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


# ---------------------------------------------------------------- hostile templates


@pytest.fixture
def limits() -> Iterator[Callable[..., None]]:
    """Sets template limits for one test and restores the defaults after it."""
    previous = template_limits()

    def set_limits(**changes: Any) -> None:
        set_template_limits(dataclasses.replace(previous, **changes))

    yield set_limits
    set_template_limits(previous)


# Each is just past a default limit, so that today's sandbox would render it.
@pytest.mark.parametrize(
    ("template", "limit"),
    [
        ("{{ 2 ** 5000 > 0 }}", "max_integer_bits"),
        ("{{ (2 ** 3000) * (2 ** 3000) > 0 }}", "max_integer_bits"),
        ("{{ 1 | round(-2000) }}", "max_integer_bits"),
        ("{{ 'a' * 2000000 }}", "max_output_chars"),
        ("{{ 2000000 * 'a' }}", "max_output_chars"),
        ("{{ ['x'] * 200000 }}", "max_collection_items"),
        ("{{ '{0:>2000000}'.format(1) }}", "max_output_chars"),
        ("{{ '{0:>{1}}'.format(1, 2000000) }}", "max_output_chars"),
        ("{{ '{x:>2000000}'.format_map({'x': 1}) }}", "max_output_chars"),
        ("{{ '%2000000d' % 1 }}", "max_output_chars"),
        ("{{ '%*d' % (2000000, 1) }}", "max_output_chars"),
        ("{{ '%2000000d' | format(1) }}", "max_output_chars"),
        ("{{ 'x'.center(2000000) }}", "max_output_chars"),
        ("{{ 'x'.ljust(2000000) }}", "max_output_chars"),
        ("{{ 'x'.zfill(2000000) }}", "max_output_chars"),
        ("{{ 'x' | center(2000000) }}", "max_output_chars"),
        ("{{ 'a\tb'.expandtabs(2000000) }}", "max_output_chars"),
        ("{{ ('a' * 1000) | replace('a', 'b' * 2000) }}", "max_output_chars"),
        ("{{ ('a' * 1000).replace('a', 'b' * 2000) }}", "max_output_chars"),
        ("{{ (['x' * 1000] * 2000) | join }}", "max_output_chars"),
        ("{{ ''.join(['x' * 1000] * 2000) }}", "max_output_chars"),
        ("{{ ['x' * 1000] * 2000 }}", "max_output_chars"),
        ("{{ (['x' * 1000] * 2000) | upper }}", "max_output_chars"),
        ("{{ 'a b' | indent(2000000, true) }}", "max_output_chars"),
        ("{{ 'a b c' | wordwrap(1, true, 'x' * 600000) }}", "max_output_chars"),
        ("{{ {'a': [1, 2]} | tojson(2000000) }}", "max_output_chars"),
        ("{{ [1] | batch(200000, 'x') | list }}", "max_collection_items"),
        ("{{ lipsum(2000) }}", "max_output_chars"),
        ("{{ (1).to_bytes(2000000, 'big') }}", "max_output_chars"),
        ("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", "max_output_chars"),
        (
            "{% set ns = namespace(s='a') %}{% for i in range(25) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "max_output_chars",
        ),
        (
            "{% set ns = namespace(s='a') %}{% for i in range(25) %}"
            "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
            "max_output_chars",
        ),
        (
            "{% macro m() %}{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}{% endmacro %}"
            "{{ m() | length }}",
            "max_output_chars",
        ),
    ],
)
def test_a_template_that_would_grow_past_a_limit_is_refused(template: str, limit: str) -> None:
    with pytest.raises(TemplateError, match=limit) as caught:
        render_template(template, {})
    assert isinstance(caught.value, TaskloomError)
    assert "template refused" in str(caught.value)


# The examples from the issue: each one ran for minutes or allocated gigabytes.
@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "template",
    [
        "{{ 10 ** (10 ** 8) > 0 }}",
        "{{ 'a' * 10 ** 9 }}",
        "{{ '{0:>999999999}'.format(1) }}",
        "{{ 'x' | center(2000000000) }}",
        "{{ 1 | round(-10 ** 9) }}",
        "{% set s = 'a' * 1000000 %}{{ (([s] * 100000) | join) | length }}",
        "{% set s = 'a' * 1000000 %}{{ [s, s, s, s] }}",
    ],
)
def test_the_reported_memory_and_cpu_bombs_fail_fast(template: str) -> None:
    with pytest.raises(TemplateError, match="template refused"):
        render_template(template, {})


@pytest.mark.timeout(60)
def test_a_when_guard_and_a_native_value_are_bounded_too() -> None:
    with pytest.raises(TemplateError, match="max_integer_bits"):
        evaluate_condition("10 ** (10 ** 8) > 0", {})
    with pytest.raises(TemplateError, match="max_output_chars"):
        render_value({"out": "{{ [inputs.topic * 300000] * 4 }}"}, CONTEXT)


def test_ordinary_templates_still_render_under_the_limits() -> None:
    template = (
        "{{ 2 ** 10 }} {{ 'ab' * 3 }} {{ [1] * 3 }} {{ '%05.1f' % 3.14159 }} "
        "{{ '{:>6}'.format('x') }} {{ 'x' | center(5) }}|{{ ['a', 'b'] | join(',') }} "
        "{{ 'a' ~ 1 ~ [2] }} {{ 'x'.zfill(3) }} {{ (1 + 2) * 3 }} {{ 2.5 | round(0) }}"
    )
    assert render_template(template, {}) == (
        "1024 ababab [1, 1, 1] 003.1      x   x  |a,b a1[2] 00x 9 2.0"
    )


def test_the_limits_are_configurable(limits: Callable[..., None]) -> None:
    limits(max_output_chars=10)
    with pytest.raises(TemplateError, match="over the limit of 10 "):
        render_template("{{ 'a' * 11 }}", {})
    with pytest.raises(TemplateError, match="the template's output"):
        render_template("{% for i in range(11) %}a{% endfor %}", {})
    assert render_template("{{ 'a' * 10 }}", {}) == "a" * 10
    limits(max_output_chars=10, max_integer_bits=100_000)
    assert render_value("{{ 2 ** 5000 > 0 }}", {}) is True


# A nested loop of 10**10 empty iterations: hours of pure Python without the deadline.
_ENDLESS_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.mark.timeout(60)
def test_a_template_loop_stops_at_the_render_deadline(limits: Callable[..., None]) -> None:
    limits(max_render_seconds=0.2)
    with pytest.raises(TemplateError, match=r"time limit of 0.2s \(max_render_seconds\)"):
        render_template(_ENDLESS_LOOP, {})
    with pytest.raises(TemplateError, match="max_render_seconds"):
        render_value({"summary": _ENDLESS_LOOP}, {})
    # The interrupted renders leave nothing behind: later ones run normally.
    for _ in range(200):
        assert render_template("{{ 1 + 1 }}", {}) == "2"


@pytest.mark.timeout(60)
def test_the_deadline_interrupts_a_render_on_another_thread(
    limits: Callable[..., None],
) -> None:
    limits(max_render_seconds=0.2)
    outcome: list[BaseException | str] = []

    def render() -> None:
        try:
            outcome.append(render_template(_ENDLESS_LOOP, {}))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=render)
    worker.start()
    worker.join()
    assert len(outcome) == 1 and isinstance(outcome[0], TemplateError)
    assert render_template("{{ 'still fine' }}", {}) == "still fine"


@pytest.mark.timeout(60)
def test_a_recursive_macro_is_a_template_error() -> None:
    template = "{% macro r(n) %}{{ r(n + 1) }}{% endmacro %}{{ r(0) }}"
    with pytest.raises(TemplateError, match="recursed too deeply"):
        render_template(template, {})
    with pytest.raises(TemplateError, match="recursed too deeply"):
        render_value({"answer": template}, {})


_LONG_SUM = " + ".join(["1"] * 400)


@pytest.mark.timeout(60)
def test_a_400_term_expression_is_a_template_error() -> None:
    with pytest.raises(TemplateError, match="nests too deeply"):
        render_template("{{ " + _LONG_SUM + " }}", {})
    with pytest.raises(TemplateError, match="nests too deeply"):
        render_value({"answer": "{{ " + _LONG_SUM + " }}"}, {})
    with pytest.raises(TemplateError, match="nests too deeply"):
        evaluate_condition(_LONG_SUM + " > 0", {})


@pytest.mark.timeout(60)
def test_references_of_a_very_deep_expression_are_a_template_error() -> None:
    deep = " + ".join(["x"] * 3000)
    with pytest.raises(TemplateError, match="nests too deeply"):
        template_references("{{ " + deep + " }}")
    with pytest.raises(TemplateError, match="nests too deeply"):
        expression_references(deep)


@pytest.mark.parametrize(
    "check",
    [
        lambda text: template_references("{{ " + text + " }}"),
        lambda text: evaluate_condition(text + " > 1", {}),
    ],
)
def test_an_integer_literal_past_pythons_digit_limit_is_a_template_error(check: Any) -> None:
    # Found by benchmarks/fuzz.py: Jinja's lexer raised a bare ValueError for it.
    with pytest.raises(TemplateError, match="number too long to read"):
        check("9" * 5000)


# Templates `render_template` answers without Jinja (plain text, a plain path to a
# string) and near misses that must still go to Jinja; both must give Jinja's text.
SHORTCUT_CONTEXT: dict[str, Any] = {
    "inputs": {"user_0": "hi there", "items": "shadowed by dict.items", "n": 3},
    "turn_0": "answer\n",
    "steps": ["a", "b"],
    "tree": {"k": {"j": ["leaf"]}},
}


@pytest.mark.parametrize("template", [
    "{{ inputs.user_0 }}", "{{turn_0}}", "{{\n turn_0\n }}", "{{ steps[1] }}",
    "{{ tree.k.j[0] }}", "plain text\n", "",
    "{{ inputs.items }}", "{{ inputs.n }}", "{{ turn_0 }}\n", "a\r\nb", "x\ry",
    "{{ range }}", "text {{ turn_0 }}", "{{ tree.k }}",
])
def test_render_template_shortcuts_give_jinjas_text(template: str) -> None:
    assert render_template(template, SHORTCUT_CONTEXT) == _render_text(
        template, SHORTCUT_CONTEXT)


@pytest.mark.parametrize("template", ["{{ steps[2] }}", "{{ inputs.missing }}", "{{ nothing }}"])
def test_render_template_shortcut_leaves_missing_names_to_jinja(template: str) -> None:
    with pytest.raises(TemplateError):
        render_template(template, SHORTCUT_CONTEXT)


def test_render_template_shortcut_keeps_the_output_limit() -> None:
    previous = set_template_limits(dataclasses.replace(template_limits(), max_output_chars=5))
    try:
        for template in ("{{ inputs.user_0 }}", "longer than five"):
            with pytest.raises(TemplateError, match="max_output_chars"):
                render_template(template, SHORTCUT_CONTEXT)
    finally:
        set_template_limits(previous)
