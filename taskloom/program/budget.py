"""A run's budget: hard limits on tokens, calls and time.

A spec may set `budget:`, a caller may pass one (`--budget`, `Runtime.run(budget=)`),
and a server may cap every run; the limit that applies is the tightest of them
(`tightest`). Every field is optional: an unset one does not limit anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field, field_validator

from taskloom.naming import unknown_name_message
from taskloom.program.spec_model import SpecModel

TOKEN_LIMITS = ("tokens", "prompt_tokens", "generated_tokens")
COUNT_LIMITS = (*TOKEN_LIMITS, "llm_calls", "tool_calls")
LIMIT_NAMES = (*COUNT_LIMITS, "wall_s")


class Budget(SpecModel):
    """Limits on one run. `tokens` counts prompt and generated tokens together (a
    prompt served from the prefix cache still counts); `wall_s` is seconds on the run's
    clock. A run that crosses one ends `budget_exceeded`."""

    tokens: int | None = Field(default=None, gt=0)
    prompt_tokens: int | None = Field(default=None, gt=0)
    generated_tokens: int | None = Field(default=None, gt=0)
    llm_calls: int | None = Field(default=None, gt=0)
    tool_calls: int | None = Field(default=None, gt=0)
    wall_s: float | None = Field(default=None, gt=0)

    @field_validator("wall_s")
    @classmethod
    def _wall_s_is_finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("wall_s must be a finite number of seconds")
        return value

    def limits(self) -> dict[str, float]:
        """The limits that are set, by name."""
        return {name: value for name in LIMIT_NAMES if (value := getattr(self, name)) is not None}

    def is_empty(self) -> bool:
        return not self.limits()


class BudgetParseError(ValueError):
    """A `KEY=VALUE` budget item that names no limit or gives no positive number."""


def tightest(budgets: Iterable[Budget | None]) -> Budget | None:
    """One budget with the lowest of each limit set in any of `budgets`; None if none
    sets anything (a server's cap can only be tightened by a run's own budget)."""
    merged: dict[str, float] = {}
    for budget in budgets:
        if budget is None:
            continue
        for name, value in budget.limits().items():
            merged[name] = min(value, merged.get(name, value))
    return Budget(**merged) if merged else None


def parse_budget_items(items: Iterable[str]) -> Budget | None:
    """`["llm_calls=20", "tokens=5000"]` as a Budget; None for no items. A repeated key
    keeps its last value, as repeated options do."""
    values: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BudgetParseError(f"--budget expects KEY=VALUE, got '{item}'")
        if key not in LIMIT_NAMES:
            raise BudgetParseError("--budget: " + unknown_name_message("limit", key, LIMIT_NAMES))
        values[key] = _number(key, raw.strip())
    return Budget(**values) if values else None


def budget_from_json(data: Mapping[str, Any] | None) -> Budget | None:
    """A budget sent as a JSON object (a request to a server); None for none."""
    return None if not data else Budget.model_validate(dict(data))


def _number(key: str, raw: str) -> int | float:
    try:
        value: int | float = float(raw) if key == "wall_s" else int(raw)
    except ValueError:
        kind = "number of seconds" if key == "wall_s" else "whole number"
        raise BudgetParseError(f"--budget {key}: '{raw}' is not a {kind}") from None
    if not (math.isfinite(value) and value > 0):
        raise BudgetParseError(f"--budget {key}: must be positive, got {raw}")
    return value
