"""K first-in-first-out queues, the shape of a multi-level feedback queue.

A policy gives each call a priority (seconds of service, lower runs earlier). The queue
turns that into a level with `boundaries`: level i holds priorities below boundary i, the
last level everything above. Inside a level calls run in the order they entered it, so a
long-running program cannot jump ahead of one that has waited.

Two rules keep the levels honest while calls run and wait:

- demotion: a call that has had more than its level's quantum of service in that level
  drops one level (it is longer than its priority promised);
- anti-starvation: a waiting call whose waiting time divided by its service reaches `beta`
  goes back to the top level.

Nothing here knows about engines or time sources; the scheduler passes times in.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item", bound=Hashable)

# Defaults from a sweep on the simulated H100 (benchmarks/autellix.py sweep, mixed
# workload at 2.5 programs/s, 150 programs, PLAS, 128 calls in flight; results/autellix/
# sweep.md): four levels at 1/4/16 s of service had the lowest mean (28.5 s), three
# (8/32 s) and six (2..32 s) 28.9 s, 4/16/64 s 30.0 s. No beta from 2 to infinity changed
# anything (no call was ever promoted: a program's waiting never reached 2x its service),
# so beta is a moderate 8: a call waits at most eight times what its program received.
DEFAULT_BOUNDARIES_S: tuple[float, ...] = (1.0, 4.0, 16.0)
DEFAULT_BETA = 8.0


@dataclass(frozen=True)
class QueueConfig:
    """Levels, quanta and the anti-starvation ratio.

    - `boundaries_s`: increasing priority limits; K = len(boundaries_s) + 1 levels.
    - `quanta_s`: service a call may get in each level before it drops one. Defaults to
      each level's width (the last level never demotes).
    - `beta`: waiting ÷ service at which a waiting call is promoted to the top level;
      `math.inf` turns promotion off.
    """

    boundaries_s: tuple[float, ...] = DEFAULT_BOUNDARIES_S
    quanta_s: tuple[float, ...] | None = None
    beta: float = DEFAULT_BETA

    def __post_init__(self) -> None:
        bounds = self.boundaries_s
        if any(b <= 0 for b in bounds) or any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"boundaries_s must be positive and increasing, got {bounds}")
        if self.quanta_s is not None and len(self.quanta_s) != self.levels:
            raise ValueError(
                f"quanta_s needs one quantum per level ({self.levels}), got {len(self.quanta_s)}"
            )
        if self.quanta_s is not None and any(q <= 0 for q in self.quanta_s):
            raise ValueError("every quantum must be positive")
        if self.beta <= 0:
            raise ValueError(f"beta must be positive, got {self.beta}")

    @classmethod
    def single(cls) -> QueueConfig:
        """One level, no demotion, no promotion: plain FIFO."""
        return cls(boundaries_s=(), beta=math.inf)

    @classmethod
    def geometric(cls, levels: int, first_s: float, ratio: float, beta: float) -> QueueConfig:
        """`levels` levels with boundaries first_s, first_s*ratio, first_s*ratio^2, ..."""
        if levels < 1:
            raise ValueError("a queue needs at least one level")
        bounds = tuple(first_s * ratio**i for i in range(levels - 1))
        return cls(boundaries_s=bounds, beta=beta)

    @property
    def levels(self) -> int:
        return len(self.boundaries_s) + 1

    def level_for(self, priority: float) -> int:
        """The level a call of this priority enters."""
        return bisect.bisect_right(self.boundaries_s, priority)

    def quantum(self, level: int) -> float:
        if self.quanta_s is not None:
            return self.quanta_s[level]
        if level >= len(self.boundaries_s):
            return math.inf
        lower = self.boundaries_s[level - 1] if level > 0 else 0.0
        return self.boundaries_s[level] - lower


def exceeds_quantum(config: QueueConfig, level: int, service_in_level_s: float) -> bool:
    """Whether a call that is still running has used up its level's quantum."""
    return level < config.levels - 1 and service_in_level_s >= config.quantum(level)


def is_starving(config: QueueConfig, level: int, waiting_s: float, service_s: float) -> bool:
    """Whether a waiting call should be promoted to the top level.

    `service_s` is what the call's level stands for (its program's service under PLAS,
    its own under MLFQ); a call at the top has nowhere to go.
    """
    if level == 0 or math.isinf(config.beta):
        return False
    if service_s <= 0:
        return waiting_s > 0
    return waiting_s / service_s >= config.beta


@dataclass(order=True, frozen=True)
class QueuePosition:
    """Where a waiting call stands; smaller runs earlier.

    `rank` orders calls inside a level before their entry time; FIFO levels use 0 for
    everyone, a policy that sorts by priority inside a level (SJF) uses the priority.
    The tie-break fields make the order independent of which task ran first when several
    calls enter at the same instant.
    """

    level: int
    rank: float
    entered_s: float
    tie_break: tuple[float, str, str, str]


@dataclass
class MultiLevelQueue(Generic[Item]):
    """Waiting calls by level, each level sorted by `QueuePosition`."""

    config: QueueConfig
    _levels: list[list[tuple[QueuePosition, int]]] = field(init=False)
    _items: dict[int, Item] = field(init=False, default_factory=dict)
    _positions: dict[Item, tuple[QueuePosition, int]] = field(init=False, default_factory=dict)
    _serial: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._levels = [[] for _ in range(self.config.levels)]

    def __len__(self) -> int:
        return len(self._positions)

    def __contains__(self, item: object) -> bool:
        return item in self._positions

    def push(self, item: Item, position: QueuePosition) -> None:
        if item in self._positions:
            raise ValueError(f"{item!r} is already queued")
        # The serial only breaks exact ties of positions so tuples never compare items.
        self._serial += 1
        entry = (position, self._serial)
        bisect.insort(self._levels[position.level], entry)
        self._items[self._serial] = item
        self._positions[item] = entry

    def remove(self, item: Item) -> QueuePosition | None:
        entry = self._positions.pop(item, None)
        if entry is None:
            return None
        level = self._levels[entry[0].level]
        del level[bisect.bisect_left(level, entry)]
        del self._items[entry[1]]
        return entry[0]

    def position(self, item: Item) -> QueuePosition | None:
        entry = self._positions.get(item)
        return None if entry is None else entry[0]

    def in_order(self) -> Iterator[Item]:
        """Every waiting item, best first. Do not push or remove while iterating."""
        for level in self._levels:
            for _, serial in level:
                yield self._items[serial]

    def below_top(self) -> Iterator[Item]:
        """Items in levels other than the top one (the candidates for promotion)."""
        for level in self._levels[1:]:
            for _, serial in level:
                yield self._items[serial]

    def level_sizes(self) -> list[int]:
        return [len(level) for level in self._levels]


def promote_starving(
    queue: MultiLevelQueue[Item],
    now_s: float,
    waiting_and_service: Callable[[Item], tuple[float, float]],
) -> list[Item]:
    """Move every starving item to the top level, behind those already there."""
    starving = [
        item
        for item in queue.below_top()
        if is_starving(queue.config, _level_of(queue, item), *waiting_and_service(item))
    ]
    for item in starving:
        old = queue.remove(item)
        assert old is not None
        queue.push(item, QueuePosition(0, 0.0, now_s, old.tie_break))
    return starving


def _level_of(queue: MultiLevelQueue[Item], item: Item) -> int:
    position = queue.position(item)
    assert position is not None
    return position.level
