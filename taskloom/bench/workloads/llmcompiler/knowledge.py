"""A small, deterministic knowledge base of made-up entities.

Names are invented from syllables so that no model can answer from memory: every fact
has to come from a tool call. The same seed always gives the same entities and facts.
"""

from __future__ import annotations

import difflib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_ONSETS = (
    "b",
    "d",
    "f",
    "g",
    "k",
    "l",
    "m",
    "n",
    "p",
    "r",
    "s",
    "t",
    "v",
    "z",
    "br",
    "dr",
    "kl",
    "st",
    "tr",
    "th",
)
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ia")
_CODAS = ("", "n", "r", "s", "l", "th", "m", "x")
_GENRES = ("drama", "comedy", "thriller", "science fiction", "animation", "documentary")


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    facts: Mapping[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What a lookup returns: the name, the kind and every fact, as JSON values."""
        return {"name": self.name, "kind": self.kind, **self.facts}


@dataclass(frozen=True)
class KnowledgeBase:
    entities: tuple[Entity, ...]

    def of_kind(self, kind: str) -> list[Entity]:
        return [entity for entity in self.entities if entity.kind == kind]

    def find(self, name: str) -> Entity | None:
        wanted = name.strip().lower()
        return next((e for e in self.entities if e.name.lower() == wanted), None)

    def close_names(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, [e.name for e in self.entities], n=3)


def build_knowledge_base(
    seed: int, *, cities: int = 60, towers: int = 60, movies: int = 80
) -> KnowledgeBase:
    rng = random.Random(f"llmcompiler-kb-{seed}")
    names = _NameMaker(rng)
    entities = [
        *(_city(names.make(2), rng) for _ in range(cities)),
        *(_tower(names.make(2) + " Tower", rng) for _ in range(towers)),
        *(_movie(names.make(3).title(), rng) for _ in range(movies)),
    ]
    return KnowledgeBase(tuple(entities))


class _NameMaker:
    """Distinct invented names."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = set()

    def make(self, syllables: int) -> str:
        while True:
            name = "".join(self._syllable() for _ in range(syllables)).capitalize()
            if name not in self.used and len(name) >= 4:
                self.used.add(name)
                return name

    def _syllable(self) -> str:
        return self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS) + self.rng.choice(_CODAS)


def _city(name: str, rng: random.Random) -> Entity:
    facts = {
        "population": rng.randrange(20_000, 5_000_000, 100),
        "area_km2": rng.randrange(30, 3_000),
        "elevation_m": rng.randrange(0, 2_500),
        "founded": rng.randrange(800, 1950),
    }
    return Entity(name, "city", facts)


def _tower(name: str, rng: random.Random) -> Entity:
    return Entity(
        name, "tower", {"height_m": rng.randrange(40, 640), "opened": rng.randrange(1850, 2024)}
    )


def _movie(name: str, rng: random.Random) -> Entity:
    facts = {
        "year": rng.randrange(1950, 2024),
        "rating": round(rng.uniform(3.0, 9.5), 1),
        "runtime_min": rng.randrange(75, 200),
        "genre": rng.choice(_GENRES),
    }
    return Entity(name, "movie", facts)
