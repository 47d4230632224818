"""Errors found while Jinja compiles a template (it folds constants then) are
TemplateErrors like any other (both found by the 20,000-case fuzz run)."""

from __future__ import annotations

import pytest

from taskloom.program.refs import TemplateError, evaluate_condition, render_value

UNSAFE_FOLDED = "{{ range((10|attr('__class__') if 10|attr('__class__') else 1)) }}"


@pytest.mark.parametrize("template", [UNSAFE_FOLDED, "{{ 1|attr('__class__') }} and text"])
def test_a_sandbox_refusal_met_while_compiling_is_a_template_error(template: str) -> None:
    with pytest.raises(TemplateError, match=r"sandbox refused.*__class__"):
        render_value(template, {})


def test_an_unknown_filter_met_while_compiling_a_condition_is_a_syntax_error() -> None:
    with pytest.raises(TemplateError, match=r"syntax error: No filter named .tojson\.split."):
        evaluate_condition("{{ 1|tojson.split }}", {})
