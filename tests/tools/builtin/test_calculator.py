from __future__ import annotations

import math

import pytest

from taskloom.errors import ToolError
from taskloom.tools.builtin import calculator_tool
from taskloom.tools.builtin.calculator import calculator


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("7 / 2", 3.5),
        ("7 // 2", 3),
        ("-7 % 3", 2),
        ("2 ** 10", 1024),
        ("-3 ** 2", -9),
        ("+4 - -1", 5),
        ("sqrt(16) + abs(-2)", 6.0),
        ("round(2.567, 2)", 2.57),
        ("min(4, 2, 8) + max(1, 9)", 11),
        ("log(e)", 1.0),
        ("log(8, 2)", 3.0),
        ("2 ** -1", 0.5),
        ("1_000 * 3", 3000),
    ],
)
def test_arithmetic(expression: str, expected: float) -> None:
    assert calculator(expression) == pytest.approx(expected)


def test_integer_results_stay_integers() -> None:
    result = calculator("6 * 7")
    assert result == 42 and isinstance(result, int)
    assert isinstance(calculator("6 / 3"), float)


def test_constants() -> None:
    assert calculator("2 * pi") == pytest.approx(math.tau)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("expression", ["9 ** 9 ** 9", "10 ** 100000", "(2 ** 4000) * (2 ** 4000)"])
def test_huge_numbers_are_refused(expression: str) -> None:
    with pytest.raises(ToolError, match=r"too large|more than"):
        calculator(expression)


@pytest.mark.parametrize(
    ("expression", "complaint"),
    [
        ("__import__('os').system('true')", "unknown function"),
        ("open('x')", "unknown function"),
        ("x + 1", "unknown name 'x'"),
        ("(1).__class__", "not allowed"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("lambda: 1", "not allowed"),
        ("[1, 2]", "not allowed"),
        ("1 < 2", "not allowed"),
        ("2 ^ 3", r"use \*\* for powers"),
        ("1 / 0", "division by zero"),
        ("5 % 0", "failed"),
        ("sqrt(-1)", "failed"),
        ("(-8) ** 0.5", "complex"),
        ("1e308 * 10", "overflow"),
        ("round(x=1)", "positional"),
        ("1 +", "cannot parse"),
        ("1; 2", "cannot parse"),
        ("min()", "failed"),
    ],
)
def test_refusals(expression: str, complaint: str) -> None:
    with pytest.raises(ToolError, match=complaint):
        calculator(expression)


# round(n, -k) computes 10 ** k first: -10**9 ran for hours, -5000 quietly gave 0.
@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "expression",
    ["round(1, -10 ** 9)", "round(1, -5000)", "round(7, 10 ** 9)", "round(1.5, -10 ** 9)"],
)
def test_rounding_to_a_huge_number_of_digits_is_refused(expression: str) -> None:
    with pytest.raises(ToolError, match=r"round\(\) to .* digits is beyond the limit of 4096 bits"):
        calculator(expression)


def test_rounding_within_the_limit_still_works() -> None:
    assert calculator("round(1234, -2)") == 1200
    assert calculator("round(1, -1000)") == 0
    assert calculator("round(2.5)") == 2


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "expression", ["1 << 10 ** 10", "(2 ** 4000) >> 1", "~1", "5 & 3", "5 | 3"]
)
def test_bitwise_operators_are_not_arithmetic(expression: str) -> None:
    with pytest.raises(ToolError, match="not allowed"):
        calculator(expression)


@pytest.mark.timeout(30)
def test_deep_nesting_is_a_tool_error() -> None:
    with pytest.raises(ToolError, match="calculator"):
        calculator("-" * 990 + "1")


def test_overlong_expression_is_refused() -> None:
    with pytest.raises(ToolError, match="longer than"):
        calculator("1+" * 600 + "1")


@pytest.mark.anyio
async def test_as_a_tool() -> None:
    calc = calculator_tool()
    assert calc.name == "calculator"
    assert await calc.call({"expression": "2 + 2"}) == 4
    with pytest.raises(ToolError, match="calculator"):
        await calc.call({"expression": "import os"})
