"""The base models of the spec language: every spec object, and every node kind."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class SpecModel(BaseModel):
    """A spec object: unknown fields are errors, and values never change once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OnError = Literal["fail", "skip", "default"]


class NodeBase(SpecModel):
    """Options every node kind shares. A kind subclasses this with `kind: Literal[...]`
    and its own fields, and is registered by name (see `taskloom.program.kinds`)."""

    kind: str
    description: str = ""
    when: str | None = None
    after: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0)
    retry_backoff: float = Field(default=0.5, ge=0)
    on_error: OnError = "fail"
    default: Any = None
