"""What LLM calls cost: a price table per model, in USD per million tokens.

A table is a YAML or JSON mapping from model name to `{prompt, cached_prompt,
generated}`; `cached_prompt` (prompt tokens served from the prefix cache) defaults to
the prompt price. A call that names no model runs on the engine's own model: it is
priced by the `default` entry, else by the engine's model name. Every model a program
can call must be in the table before it runs: a missing price is an error, never 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskloom.errors import TaskloomError
from taskloom.naming import did_you_mean
from taskloom.orchestrator.llm_call import TokenUsage
from taskloom.program.models import Program

DEFAULT_ENTRY = "default"
PER_TOKENS = 1_000_000


class PriceError(TaskloomError):
    """A price table that cannot be read, or that lacks a model a run can call."""


class ModelPrice(BaseModel):
    """USD per million tokens of one model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: float = Field(ge=0, allow_inf_nan=False)
    generated: float = Field(ge=0, allow_inf_nan=False)
    cached_prompt: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    def cost(self, usage: TokenUsage) -> float:
        cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
        cached_price = self.prompt if self.cached_prompt is None else self.cached_prompt
        return ((usage.prompt_tokens - cached) * self.prompt + cached * cached_price
                + usage.generated_tokens * self.generated) / PER_TOKENS


@dataclass(frozen=True)
class PriceTable:
    models: Mapping[str, ModelPrice]
    engine_model: str | None = None  # what a call that names no model runs on

    @classmethod
    def load(cls, path: Path) -> PriceTable:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise PriceError(f"cannot read the price table {path}: {exc}") from None
        return cls.from_data(data, str(path))

    @classmethod
    def from_data(cls, data: Any, where: str = "the price table") -> PriceTable:
        if not isinstance(data, dict) or not data:
            raise PriceError(f"{where}: expected a mapping of model name to "
                             "{prompt, cached_prompt, generated} (USD per million tokens)")
        models: dict[str, ModelPrice] = {}
        for name, price in data.items():
            try:
                models[str(name)] = ModelPrice.model_validate(price)
            except ValidationError as exc:
                problem = exc.errors()[0]
                field = ".".join(str(p) for p in problem["loc"])
                raise PriceError(f"{where}: model '{name}': {field}: {problem['msg']}") from None
        return cls(models)

    def for_engine(self, engine_model: str | None) -> PriceTable:
        return self if engine_model is None else replace(self, engine_model=engine_model)

    def price_of(self, model: str | None) -> ModelPrice:
        for name in (model,) if model is not None else (DEFAULT_ENTRY, self.engine_model):
            if name is not None and name in self.models:
                return self.models[name]
        raise PriceError(self._missing_message(model))

    def check(self, models: Iterable[str | None]) -> None:
        """Raise PriceError unless every one of `models` has a price."""
        for model in sorted(set(models), key=lambda m: (m is not None, m or "")):
            self.price_of(model)

    def cost(self, usage_by_model: Mapping[str | None, TokenUsage]) -> float:
        return sum(self.price_of(model).cost(usage) for model, usage in usage_by_model.items())

    def _missing_message(self, model: str | None) -> str:
        known = ", ".join(sorted(self.models))
        if model is None:
            engine = f" ('{self.engine_model}')" if self.engine_model else ""
            return (f"the price table has no price for the engine's own model{engine}, "
                    f"which calls that name no model run on; add a `{DEFAULT_ENTRY}:` "
                    f"entry (the table has: {known})")
        hint = did_you_mean(model, self.models)
        return (f"the price table has no price for model '{model}'"
                f"{f' ({hint})' if hint else ''}; the table has: {known}")


def models_called(program: Program) -> set[str | None]:
    """The models a program's LLM calls can name (None: the engine's own). A node with
    a `model` field makes LLM calls; a `map` calls what its body calls."""
    found: set[str | None] = set()
    for node in program.nodes.values():
        for each in (node, getattr(node, "node", None)):
            if each is not None and "model" in type(each).model_fields:
                found.add(getattr(each, "model", None) or program.defaults.model)
    return found
