"""Scheduling policies by name, as the CLI, specs and the benchmark runner choose them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from taskloom.backends.base import Backend
from taskloom.errors import TaskloomError
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.fifo import FifoScheduler

# A factory gets every engine the run may use (one, or several for load balancing).
SchedulerFactory = Callable[[Sequence[Backend]], Scheduler]


class UnknownPolicy(TaskloomError):
    """A policy name that no scheduler is registered under."""


def _fcfs(backends: Sequence[Backend]) -> Scheduler:
    if len(backends) != 1:
        raise UnknownPolicy("fcfs drives exactly one engine; pick a load-balancing policy")
    return FifoScheduler(backends[0])


_POLICIES: dict[str, SchedulerFactory] = {"fcfs": _fcfs}


def register_policy(name: str, factory: SchedulerFactory) -> None:
    _POLICIES[name] = factory


def policy_names() -> list[str]:
    return sorted(_POLICIES)


def make_scheduler(policy: str, backends: Sequence[Backend]) -> Scheduler:
    factory = _POLICIES.get(policy)
    if factory is None:
        close = difflib.get_close_matches(policy, list(_POLICIES), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownPolicy(
            f"unknown scheduling policy '{policy}'{hint}; choose from {', '.join(policy_names())}"
        )
    return factory(backends)
