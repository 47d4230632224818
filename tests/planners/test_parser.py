"""The streaming plan parsers: same tasks however the stream is cut, typed values, and
every kind of bad plan turned into a task with an error instead of an exception."""

from __future__ import annotations

import codecs
import itertools
import random
from collections.abc import Iterable

import pytest

from taskloom.planners.base import Interpolation, Ref, Task
from taskloom.planners.parser import JsonPlanParser, PlanParser, TextPlanParser, parse_arguments
from taskloom.tools.registry import Tool, tool


@tool
def search(entity: str) -> dict[str, object]:
    """Look something up.

    Args:
        entity: the name.
    """
    return {"name": entity}


@tool
def calculator(expression: str) -> float:
    """Arithmetic.

    Args:
        expression: the expression.
    """
    return 0.0


@tool
def choose(options: list[str], scores: list[float], prefer: str = "highest") -> str:
    """Pick one."""
    return options[0]


TOOLS: list[Tool] = [search, calculator, choose]

TEXT_PLAN = """Thought: look both up — «naïve» café
1. search(entity="Zürich (old town)")
2. search("Bergen, \\"NO\\"")
Some prose the model wrote between tasks.
3. calculator(expression="($1.population + $2.population) / 1000")
4. choose(options=["a", "b"], scores=[$1.score, $2["score"]], prefer='lowest')
5. join()
6. search(entity="after the join is ignored")
"""

JSON_PLAN = (
    '{"tasks": [{"id": 1, "tool": "search", "args": {"entity": "Zürich {x} [y]"}},\n'
    ' {"id": 2, "tool": "search", "args": {"entity": "a \\"}\\" b"}},\n'
    ' {"id": 3, "tool": "choose", "args": {"options": ["a", "b"], '
    '"scores": ["$1.score", "$2.score"], "prefer": "highest"}}]}'
)


def _feed(parser: PlanParser, pieces: Iterable[str]) -> list[Task]:
    tasks: list[Task] = []
    for piece in pieces:
        tasks.extend(parser.feed(piece))
    return tasks + parser.close()


def _byte_pieces(text: str, cuts: list[int]) -> list[str]:
    """The text as a byte stream cut at `cuts`, decoded the way a streaming client would."""
    data = text.encode()
    decoder = codecs.getincrementaldecoder("utf-8")()
    bounds = [0, *cuts, len(data)]
    pieces = [decoder.decode(data[a:b]) for a, b in itertools.pairwise(bounds)]
    return [*pieces, decoder.decode(b"", final=True)]


@pytest.mark.parametrize(
    ("make", "plan"),
    [(TextPlanParser, TEXT_PLAN), (JsonPlanParser, JSON_PLAN)],
    ids=["text", "json"],
)
def test_every_byte_boundary_gives_the_same_tasks(make: type[TextPlanParser], plan: str) -> None:
    whole = _feed(make(TOOLS), [plan])
    assert len(whole) >= 3 and all(task.error is None for task in whole)
    size = len(plan.encode())
    for cut in range(size + 1):
        assert _feed(make(TOOLS), _byte_pieces(plan, [cut])) == whole, cut
    # One byte at a time, and random multi-way cuts.
    assert _feed(make(TOOLS), _byte_pieces(plan, list(range(1, size)))) == whole
    rng = random.Random(7)
    for _ in range(200):
        cuts = sorted(rng.sample(range(1, size), rng.randint(2, 12)))
        assert _feed(make(TOOLS), _byte_pieces(plan, cuts)) == whole


def test_a_text_task_comes_out_when_its_line_ends() -> None:
    parser = TextPlanParser(TOOLS)
    assert parser.feed('1. search(entity="Oslo")') == []
    [task] = parser.feed("\n2. sea")
    assert (task.index, task.tool, task.args) == (1, "search", {"entity": "Oslo"})
    assert parser.feed('rch(entity="Bergen")\n')[0].args == {"entity": "Bergen"}


def test_a_json_task_comes_out_at_its_closing_brace() -> None:
    parser = JsonPlanParser(TOOLS)
    assert parser.feed('{"tasks": [{"id": 1, "tool": "search", "args": {"entity": "x"}') == []
    [task] = parser.feed("}")
    assert task.args == {"entity": "x"}
    assert not parser.done
    parser.feed("]}")
    assert parser.done


def test_text_plan_values_keep_their_types() -> None:
    tasks = _feed(TextPlanParser(TOOLS), [TEXT_PLAN])
    first, second, total, pick, join = tasks
    assert first.thought.startswith("look both up")
    assert first.args == {"entity": "Zürich (old town)"}
    assert second.args == {"entity": 'Bergen, "NO"'}  # positional, escaped quotes
    assert isinstance(total.args["expression"], Interpolation)
    assert total.dependencies == (1, 2)
    assert pick.args == {
        "options": ["a", "b"],
        "scores": [Ref(1, ("score",)), Ref(2, ("score",))],
        "prefer": "lowest",
    }
    assert join.is_join and join.index == 5


def test_json_plan_references_are_typed() -> None:
    tasks = _feed(JsonPlanParser(TOOLS), [JSON_PLAN])
    assert tasks[1].args == {"entity": 'a "}" b'}
    assert tasks[2].args["scores"] == [Ref(1, ("score",)), Ref(2, ("score",))]


def test_arguments_accept_json_and_python_literals_and_paths() -> None:
    args = parse_arguments(
        'a=1, b=-2.5, c=true, d=None, e=[1, "x"], f={"k": $3[0]["key"]}, g=$2.items[1]', None
    )
    assert args == {
        "a": 1,
        "b": -2.5,
        "c": True,
        "d": None,
        "e": [1, "x"],
        "f": {"k": Ref(3, (0, "key"))},
        "g": Ref(2, ("items", 1)),
    }


def test_a_dollar_inside_text_can_be_escaped() -> None:
    [task] = _feed(TextPlanParser(TOOLS), ['1. search(entity="costs $$5 and $$ more")\n'])
    assert task.args == {"entity": "costs $5 and $ more"} and task.dependencies == ()


# ---------------------------------------------------------------- bad plans


def _one(line: str) -> Task:
    tasks = _feed(TextPlanParser(TOOLS), ['1. search(entity="ok")\n', line + "\n"])
    return tasks[-1]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('2. serch(entity="x")', "unknown tool 'serch'; did you mean 'search'?"),
        ("2. calculator(expression=$2)", "$2 refers to task 2 itself"),
        ("2. calculator(expression=$3)", "$3 refers to task 3, which comes later"),
        ('2. calculator(expression="$1 + $5")', "$5 refers to task 5, which comes later"),
        ('2. search(entity="x"', "not closed with ')'"),
        ("2. search(entity=Oslo)", "`Oslo` is not a value"),
        ("2. search(entity=", "not closed"),
        ('2. search(entity="x") trailing words', "unexpected text after the call"),
        ("2. Then I will look things up", "expected `tool(arguments)`"),
        ('1. search(entity="again")', "task number 1 is used twice"),
        ('2. search("a", "b")', "2 positional values, but the tool takes 1"),
    ],
)
def test_bad_text_tasks_carry_an_error(line: str, expected: str) -> None:
    task = _one(line)
    assert task.error is not None and expected in task.error, task.error


def test_a_reference_to_a_missing_number_is_an_error() -> None:
    tasks = _feed(TextPlanParser(TOOLS), ['1. search(entity="a")\n3. calculator(expression=$2)\n'])
    assert tasks[1].error is not None and "no task 2 came before it" in tasks[1].error


def test_bad_json_plans_carry_an_error() -> None:
    cut_off = _feed(JsonPlanParser(TOOLS), ['{"tasks": [{"id": 1, "tool": "search", "args": {"en'])
    assert cut_off[-1].error is not None and "cut off" in cut_off[-1].error
    not_a_plan = _feed(JsonPlanParser(TOOLS), ["I think the answer is 4."])
    assert not_a_plan[0].error is not None and "not a JSON object" in not_a_plan[0].error
    forward = _feed(
        JsonPlanParser(TOOLS),
        [
            '{"tasks": [{"id": 1, "tool": "search", "args": {"entity": "$2.name"}},'
            ' {"id": 2, "tool": "nope", "args": {}}, {"id": 3, "tool": "search", "args": 5}]}'
        ],
    )
    assert forward[0].error is not None and "comes later" in forward[0].error
    assert forward[1].error is not None and "unknown tool 'nope'" in forward[1].error
    assert forward[2].error is not None and '"args"' in forward[2].error


def test_a_plan_holds_a_bounded_number_of_tasks() -> None:
    lines = "".join(f'{i}. search(entity="x{i}")\n' for i in range(1, 6))
    tasks = _feed(TextPlanParser(TOOLS, max_tasks=3), [lines])
    assert [t.error is None for t in tasks] == [True, True, True, False, False]
    full = _feed(TextPlanParser(TOOLS, max_tasks=2), [lines.split("3.")[0], "3. join()\n"])
    assert [t.error is None for t in full] == [True, True, True] and full[-1].is_join
