"""What a run did on each of several engines: the load each carried, the calls that
moved from an engine that failed to another, and whether every engine was lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CallMove:
    """A call whose engine failed under it, resumed on another with its text so far."""

    call_id: str
    from_engine: int
    to_engine: int


@dataclass(frozen=True)
class EngineUse:
    """One engine's share of a run. `calls`: calls that finished on it; `attempts`:
    streams it was sent (a preempted or moved call has several); `failed_attempts`:
    streams it broke."""

    index: int
    name: str
    in_service: bool
    calls: int = 0
    attempts: int = 0
    failed_attempts: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    out_of_service_reason: str | None = None

    @property
    def prefix_hit_rate(self) -> float:
        """Share of its prompt tokens the engine's prefix cache served."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True)
class EnginesReport:
    """The run-level `engines` record of a run on several engines (`--engine`)."""

    engines: tuple[EngineUse, ...]
    moves: tuple[CallMove, ...] = ()
    every_engine_lost: bool = False

    def to_json(self) -> dict[str, Any]:
        """The `run --json` shape (the prefix-hit rate included)."""
        return {
            "every_engine_lost": self.every_engine_lost,
            "moves": [vars(move) for move in self.moves],
            "engines": [
                {**vars(use), "prefix_hit_rate": use.prefix_hit_rate} for use in self.engines
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnginesReport:
        return cls(
            engines=tuple(
                EngineUse(**{k: v for k, v in use.items() if k != "prefix_hit_rate"})
                for use in data["engines"]
            ),
            moves=tuple(CallMove(**move) for move in data.get("moves", ())),
            every_engine_lost=bool(data.get("every_engine_lost", False)),
        )
