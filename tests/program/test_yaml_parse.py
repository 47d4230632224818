"""Hostile YAML: every problem is a located SpecError, never a traceback or a blow-up."""

from __future__ import annotations

import pytest

from taskloom.errors import SpecError
from taskloom.program.load import loads
from taskloom.program.yaml_parse import (
    MAX_ALIAS_EXPANSION,
    MAX_DEPTH,
    MAX_INTEGER_DIGITS,
    parse_yaml,
)

HEAD = "name: p\nnodes:\n"


def _error(text: str) -> SpecError:
    with pytest.raises(SpecError) as caught:
        loads(text, filename="spec.yaml")
    return caught.value


def _at(error: SpecError) -> tuple[str, int, int]:
    assert error.location is not None
    return (error.location.file, error.location.line, error.location.column)


@pytest.mark.parametrize("character", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_control_character_is_located_where_it_is(character: str) -> None:
    error = _error(f'{HEAD}  a: {{kind: llm, prompt: "ab{character}"}}\n')
    assert _at(error) == ("spec.yaml", 3, 29)
    assert repr(character) in error.message
    assert error.hint is not None


@pytest.mark.parametrize(
    "value",
    [
        "!!int abc",
        "!!float x",
        "!!timestamp 2020-99",
        "!!timestamp 2020-13-45",
        "2020-13-45",
        "!!python/object/apply:os.system [echo hacked]",
        "!!python/name:os.system x",
        "!custom thing",
    ],
)
def test_a_bad_tagged_value_is_located_at_the_value(value: str) -> None:
    error = _error(f"{HEAD}  a: {{kind: llm, prompt: hi, seed: {value}}}\n")
    assert _at(error) == ("spec.yaml", 3, 36)
    assert error.message.startswith("invalid YAML: ")


@pytest.mark.parametrize(
    "digits",
    ["9" * 5000, "9" * (MAX_INTEGER_DIGITS + 1), "0x" + "f" * 5000, "-" + "1" * 4400],
)
def test_a_huge_integer_is_refused_where_it_is_written(digits: str) -> None:
    error = _error(f"{HEAD}  a: {{kind: llm, prompt: hi}}\ndefaults: {{seed: {digits}}}\n")
    assert _at(error) == ("spec.yaml", 4, 18)
    assert "digits" in error.message


def test_an_integer_within_the_limit_loads() -> None:
    program = loads(f"{HEAD}  a: {{kind: llm, prompt: hi}}\ndefaults: {{seed: {'9' * 900}}}\n")
    assert program.defaults.seed == int("9" * 900)


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["l0: &l0 x"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*l{level - 1}"] * width)
        lines.append(f"l{level}: &l{level} [{aliases}]")
    return "\n".join(lines) + "\n" + HEAD + "  a: {kind: llm, prompt: hi}\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    # 9 levels of 9 aliases expand to 9**9 (387 million) values.
    error = _error(_alias_bomb(9, 9))
    assert f"{MAX_ALIAS_EXPANSION:,}" in error.message
    # 9**4 = 6,561 values are copied in by level 4, so the alias that crosses
    # the limit is on the line of level 5.
    assert _at(error)[1] == 6


def test_aliases_that_stay_under_the_limit_load() -> None:
    parsed = parse_yaml(_alias_bomb(3, 9), "spec.yaml")
    assert len(parsed.data["l3"]) == 9
    assert parsed.source.locate(("nodes", "a")).line == 7


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        (f"{HEAD}  a: &self {{kind: llm, prompt: hi, after: [*self]}}\n", 3, 44),
        (f"{HEAD}  a: {{kind: llm, prompt: hi}}\ninputs: &loop {{x: *loop}}\n", 4, 19),
    ],
)
def test_a_recursive_alias_is_located_at_the_alias(text: str, line: int, column: int) -> None:
    error = _error(text)
    assert "inside the value it names" in error.message
    assert _at(error) == ("spec.yaml", line, column)


@pytest.mark.parametrize("opener", ["[", "{a: "])
def test_deep_nesting_is_refused_at_the_level_that_crosses(opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    depth = 5000
    text = f"{HEAD}  a: {{kind: llm, prompt: hi}}\ninputs: " + opener * depth + closer * depth
    error = _error(text + "\n")
    assert f"{MAX_DEPTH} levels" in error.message
    assert _at(error) == ("spec.yaml", 4, 9 + len(opener) * (MAX_DEPTH - 1))


def test_nesting_at_the_limit_is_parsed() -> None:
    depth = MAX_DEPTH - 1  # the document's top-level mapping is the first level
    parsed = parse_yaml("x: " + "[" * depth + "]" * depth + "\n", "spec.yaml")
    assert isinstance(parsed.data["x"], list)
