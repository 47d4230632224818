"""Writing plans out: text that parses back to the same tasks, and the JSON plan schema."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from taskloom.planners.base import Interpolation, Ref, Task
from taskloom.planners.parser import TextPlanParser
from taskloom.planners.plan_format import (
    format_task,
    format_tools,
    plan_json_schema,
    string_value,
)
from taskloom.tools.registry import Tool, tool


@tool
def search(entity: str, limit: int = 3) -> dict[str, object]:
    """Look something up.

    Args:
        entity: the name to look up.
        limit: how many hits.
    """
    return {}


@tool
def choose(options: list[str], scores: list[float]) -> str:
    """Pick the best option."""
    return options[0]


TOOLS: list[Tool] = [search, choose]


def test_strings_with_references_become_refs_or_interpolations() -> None:
    assert string_value("$2") == Ref(2)
    assert string_value('$2.city["zip code"][0]') == Ref(2, ("city", "zip code", 0))
    assert string_value("near $1.name.") == Interpolation(("near ", Ref(1, ("name",)), "."))
    assert string_value("costs $$5") == "costs $5"
    assert string_value("plain $ sign") == "plain $ sign"


@pytest.mark.parametrize(
    "task",
    [
        Task(1, "search", {"entity": 'a "quoted" (thing)\nnew line', "limit": 5}),
        Task(2, "search", {"entity": Interpolation(("near ", Ref(1, ("name",)), " for $5"))}),
        Task(3, "choose", {"options": ["x", "y"], "scores": [Ref(1, ("s",)), Ref(2, ("s", 0))]}),
        Task(4, "search", {"entity": "costs $$ and $7 literally"}),
    ],
)
def test_formatted_tasks_parse_back_to_themselves(task: Task) -> None:
    parser = TextPlanParser(TOOLS)
    earlier = [f'{i}. search(entity="x")\n' for i in range(1, task.index)]
    for line in earlier:
        parser.feed(line)
    [parsed] = parser.feed(format_task(task) + "\n")
    assert parsed.error is None and parsed.args == task.args


def test_tools_are_shown_with_their_arguments() -> None:
    text = format_tools(TOOLS)
    assert "1. search(entity: string, limit?: integer): Look something up." in text
    assert "   - entity: the name to look up." in text
    assert "2. choose(options: list of string, scores: list of number)" in text


def test_the_json_plan_schema_names_only_the_tools_and_admits_references() -> None:
    schema = plan_json_schema(TOOLS)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    good = {
        "tasks": [
            {"id": 1, "tool": "search", "args": {"entity": "Oslo", "limit": 2}},
            {"id": 2, "tool": "search", "args": {"entity": "near $1.name", "limit": "$1.count"}},
            {"id": 3, "tool": "choose", "args": {"options": ["a"], "scores": ["$1.score", 2.5]}},
        ]
    }
    jsonschema.validate(good, schema)
    bad: dict[str, Any]
    for bad in (
        {"tasks": [{"id": 1, "tool": "serch", "args": {"entity": "x"}}]},
        {"tasks": [{"id": 1, "tool": "search", "args": {"entity": "x", "limit": "three"}}]},
        {"tasks": [{"id": 1, "tool": "choose", "args": {"options": ["a"], "scores": "high"}}]},
        {"tasks": []},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
