"""Safe arithmetic: the expression is parsed with `ast` and walked, never passed to eval."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

from taskloom.errors import ToolError
from taskloom.tools.tool import Tool, tool

Number = int | float

MAX_EXPRESSION_CHARS = 1000
# Integers beyond this many bits take long to compute and print; no sensible question needs them.
MAX_INTEGER_BITS = 4096

_CONSTANTS: dict[str, Number] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt,
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "log": math.log,
    "log2": math.log2,
    "log10": math.log10,
    "exp": math.exp,
    "floor": math.floor,
    "ceil": math.ceil,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
}

_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}

_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def calculator(expression: str) -> Number:
    """Evaluate an arithmetic expression and return the number.

    Args:
        expression: Arithmetic such as "(2 + 3) * 4 ** 2 / 7". Supports + - * / // % **,
            parentheses, the constants pi, e and tau, and the functions sqrt, abs, round,
            min, max, log, log2, log10, exp, floor, ceil, sin, cos and tan.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolError(f"calculator: expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
        return _checked(_evaluate(tree.body))
    except SyntaxError as exc:
        raise ToolError(f"calculator: cannot parse {expression!r}: {exc.msg}") from None
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise ToolError(f"calculator: {expression!r} failed: {exc}") from None
    except RecursionError:
        raise ToolError(f"calculator: {expression!r} is nested too deeply") from None


def calculator_tool() -> Tool:
    """The calculator as a Tool named `calculator`."""
    return tool(calculator)


def _evaluate(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant):
        return _number(node.value)
    if isinstance(node, ast.Name):
        return _constant(node.id)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY_OPERATORS:
        return _checked(_UNARY_OPERATORS[type(node.op)](_evaluate(node.operand)))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPERATORS:
        return _binary(node)
    if isinstance(node, ast.Call):
        return _call(node)
    raise ToolError(f"calculator: {_unsupported(node)} is not allowed")


def _number(value: object) -> Number:
    # bool is an int subclass; `True + 1` is not arithmetic anyone means.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    raise ToolError(f"calculator: only numbers are allowed, not {value!r}")


def _constant(name: str) -> Number:
    if name in _CONSTANTS:
        return _CONSTANTS[name]
    known = ", ".join(sorted(_CONSTANTS))
    raise ToolError(f"calculator: unknown name '{name}' (known constants: {known})")


def _binary(node: ast.BinOp) -> Number:
    left, right = _evaluate(node.left), _evaluate(node.right)
    if isinstance(node.op, ast.Pow):
        _refuse_huge_power(left, right)
    return _checked(_BINARY_OPERATORS[type(node.op)](left, right))


def _refuse_huge_power(base: Number, exponent: Number) -> None:
    # Estimate the size before computing: 9 ** 9 ** 9 would otherwise run for minutes.
    both_ints = isinstance(base, int) and isinstance(exponent, int)
    if both_ints and abs(base) > 1 and exponent * math.log2(abs(base)) > MAX_INTEGER_BITS:
        raise ToolError(f"calculator: {base} ** {exponent} is too large to compute")


def _checked(value: Any) -> Number:
    if isinstance(value, complex):
        raise ToolError("calculator: the result is a complex number")
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise ToolError(f"calculator: the result has more than {MAX_INTEGER_BITS} bits")
    if not isinstance(value, int | float):
        raise ToolError(f"calculator: the result {value!r} is not a number")
    # inf and nan are not JSON; an overflowing float is as useless as an error.
    if isinstance(value, float) and not math.isfinite(value):
        raise ToolError(f"calculator: the result is {value} (overflow or undefined)")
    return value


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
        known = ", ".join(sorted(_FUNCTIONS))
        raise ToolError(f"calculator: unknown function {ast.unparse(node.func)!r} (known: {known})")
    if node.keywords:
        raise ToolError(f"calculator: {node.func.id}() takes positional arguments only")
    args = [_evaluate(arg) for arg in node.args]
    if node.func.id == "round" and len(args) == 2:
        _refuse_huge_rounding(args[1])
    return _checked(_FUNCTIONS[node.func.id](*args))


def _refuse_huge_rounding(ndigits: Number) -> None:
    # round(n, -k) computes 10 ** k first: round(1, -10**9) would run for hours.
    if isinstance(ndigits, int) and abs(ndigits) * math.log2(10) > MAX_INTEGER_BITS:
        raise ToolError(
            f"calculator: round() to {ndigits} digits is beyond the limit of "
            f"{MAX_INTEGER_BITS} bits (about {int(MAX_INTEGER_BITS / math.log2(10))} digits)"
        )


def _unsupported(node: ast.expr) -> str:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitXor):
        return "'^' (use ** for powers)"
    return f"{ast.unparse(node)!r}"
