"""Scheduling policies by name: one table of scheduler factories and one check.

A policy name, wherever it comes from (a spec's `policy:`, `taskloom run --policy`, the
benchmark runner), is looked up here, and an unknown one is refused here, with the same
`UnknownPolicy` and the same message. The built-in policies are registered in
`registry.py`; a test registers its own for the length of a `with` block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from taskloom.backends.base import Backend
from taskloom.errors import TaskloomError
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.scheduler.base import Scheduler

SchedulerFactory = Callable[[Sequence[Backend]], Scheduler]
"""Builds a scheduler over every engine the run may use (one, or several to balance)."""


class UnknownPolicy(TaskloomError):
    """A policy name that nothing is registered under."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(unknown_name_message("scheduling policy", name, self.known))


class PolicyRegistry:
    """Scheduler factories by policy name."""

    def __init__(self) -> None:
        self._factories: dict[str, SchedulerFactory] = {}

    def register(self, name: str, factory: SchedulerFactory) -> None:
        """Add `name`, or replace what it named."""
        self._factories[name] = factory

    @contextmanager
    def registered(self, name: str, factory: SchedulerFactory) -> Iterator[str]:
        """`name` is registered inside the block; afterwards it names what it did before
        (nothing, for a new name)."""
        previous = self._factories.get(name)
        self.register(name, factory)
        try:
            yield name
        finally:
            if previous is None:
                del self._factories[name]
            else:
                self._factories[name] = previous

    def names(self) -> list[str]:
        return sorted(self._factories)

    def check(self, name: str) -> None:
        """Raise `UnknownPolicy` unless `name` is registered."""
        if name not in self._factories:
            raise UnknownPolicy(name, self._factories)

    def create(self, name: str, backends: Sequence[Backend]) -> Scheduler:
        """A fresh scheduler of policy `name` over `backends`."""
        self.check(name)
        return self._factories[name](backends)
