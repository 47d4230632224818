"""The command line's `--budget KEY=VALUE` and `--prices FILE` options, for `run`,
`submit` and `serve`, checked before anything starts (exit 2 on a bad one)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from taskloom.orchestrator.prices import PriceError, PriceTable, models_called
from taskloom.program.budget import LIMIT_NAMES, Budget, BudgetParseError, parse_budget_items
from taskloom.program.models import Program

EXIT_BUDGET_EXCEEDED = 5
"""The exit code of a run that ended `budget_exceeded`."""
_EXIT_BAD_OPTION = 2

BudgetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--budget",
        help="A hard limit on the run, KEY=VALUE (repeatable), KEY one of "
        f"{', '.join(LIMIT_NAMES)}; e.g. --budget llm_calls=20 --budget tokens=5000. "
        "The run stops at once when one is crossed (exit 5); a spec's own `budget:` "
        "can only be tightened.",
    ),
]
PricesOpt = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="A YAML/JSON price table: model name -> {prompt, cached_prompt, generated} "
        "in USD per million tokens (`default:` prices calls that name no model). Adds "
        "cost_usd per node and in total.",
    ),
]


def _refuse(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(_EXIT_BAD_OPTION)


def budget_from_options(items: Iterable[str] | None) -> Budget | None:
    """The `--budget` items as one Budget; exits 2 with one line on a bad item."""
    try:
        return parse_budget_items(items or ())
    except BudgetParseError as exc:
        raise _refuse(str(exc)) from None
    except ValidationError as exc:
        raise _refuse(f"--budget: {exc.errors()[0]['msg']}") from None


def prices_from_option(
    path: Path | None, program: Program | None = None, engine_model: str | None = None
) -> PriceTable | None:
    """The `--prices` table, checked to price every model `program` can call; exits 2
    on an unreadable table or a missing model."""
    if path is None:
        return None
    try:
        prices = PriceTable.load(path)
        if program is not None:
            prices.for_engine(engine_model).check(models_called(program))
    except PriceError as exc:
        raise _refuse(f"--prices: {exc}") from None
    return prices
