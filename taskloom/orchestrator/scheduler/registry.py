"""Scheduling policies by name, as the CLI, specs and the benchmark runner choose them."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from taskloom.backends.base import Backend
from taskloom.errors import TaskloomError
from taskloom.orchestrator.scheduler.balancer import balancer_named
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.program_aware import (
    DEFAULT_MAX_IN_FLIGHT,
    ProgramAwareScheduler,
)

# A factory gets every engine the run may use (one, or several for load balancing).
SchedulerFactory = Callable[[Sequence[Backend]], Scheduler]


class UnknownPolicy(TaskloomError):
    """A policy name that no scheduler is registered under."""


def _program_aware(
    policy: str, balancer: str, max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT
) -> SchedulerFactory:
    def factory(backends: Sequence[Backend]) -> Scheduler:
        return ProgramAwareScheduler(
            backends, policy, balancer=balancer_named(balancer), max_in_flight=max_in_flight
        )

    return factory


# fcfs is what a plain engine behind a plain load balancer does: arrival order, engines in
# turn, every call handed to the engine up to its capacity. The program-aware policies
# keep at most DEFAULT_MAX_IN_FLIGHT calls per engine and use the locality balancer; their
# "-rr" twins use round-robin, the baseline the load balancer is measured against.
_POLICIES: dict[str, SchedulerFactory] = {"fcfs": _program_aware("fcfs", "round-robin", None)}
for _name in ("atlas", "plas", "mlfq", "sjf-oracle"):
    _POLICIES[_name] = _program_aware(_name, "locality")
for _name in ("atlas", "plas", "mlfq"):
    _POLICIES[f"{_name}-rr"] = _program_aware(_name, "round-robin")

# PLAS, not ATLAS: on the simulated H100 it had the lower mean latency on the mixed and
# tree-search workloads (benchmarks/autellix.py); ATLAS ranks a wide tree search by its
# critical path only, so it lets those long programs ahead of chats.
DEFAULT_POLICY = "plas"


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
