"""The built-in scheduling policies, registered by name in `POLICY_REGISTRY`.

The names come from the policies' own records (`policies.BUILT_IN_POLICIES`), plus a
"-rr" (round-robin), a "-ll" (least-loaded), a "-loc" (plain locality) and a "-sticky"
(sticky locality, the default's balancer, by name) twin for each multi-level one, and
`plas-pause` (`resident_sessions.py`); nothing else lists them.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskloom.backends.base import Backend
from taskloom.orchestrator.scheduler.balancer import DEFAULT_BALANCER, balancer_named
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.policies import BUILT_IN_POLICIES, Policy
from taskloom.orchestrator.scheduler.policy_registry import (
    PolicyRegistry,
    SchedulerFactory,
    UnknownPolicy,
)
from taskloom.orchestrator.scheduler.program_aware import (
    DEFAULT_MAX_IN_FLIGHT,
    ProgramAwareScheduler,
)
from taskloom.orchestrator.scheduler.resident_sessions import (
    PAUSE_POLICY,
    resident_session_scheduler,
)

__all__ = [
    "BALANCER_TWINS",
    "DEFAULT_POLICY",
    "POLICY_REGISTRY",
    "SchedulerFactory",
    "UnknownPolicy",
    "check_policy",
    "make_scheduler",
    "policy_names",
    "register_policy",
    "split_twin",
]

# PLAS, not ATLAS: on the simulated H100 it had the lower mean latency on the mixed and
# tree-search workloads (benchmarks/autellix.py); ATLAS ranks a wide tree search by its
# critical path only, so it lets those long programs ahead of chats.
DEFAULT_POLICY = "plas"

BALANCER_TWINS = {"-rr": "round-robin", "-ll": "least-loaded", "-loc": "locality",
                  "-sticky": "sticky-locality"}
"""Suffix of a policy's twin over a plain balancer -> that balancer's name."""


def split_twin(name: str) -> tuple[str, str | None]:
    """("plas", "round-robin") for "plas-rr"; (name, None) for a name with no twin suffix."""
    for suffix, balancer in BALANCER_TWINS.items():
        if name.endswith(suffix):
            return name.removesuffix(suffix), balancer
    return name, None


def _program_aware(
    policy: Policy, balancer: str, max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT
) -> SchedulerFactory:
    def factory(backends: Sequence[Backend]) -> Scheduler:
        return ProgramAwareScheduler(
            backends, policy, balancer=balancer_named(balancer), max_in_flight=max_in_flight
        )

    return factory


def _built_in() -> PolicyRegistry:
    # fcfs is what a plain engine behind a plain load balancer does: arrival order,
    # engines in turn, every call handed to the engine up to its capacity. The
    # program-aware policies keep at most DEFAULT_MAX_IN_FLIGHT calls per engine and
    # route with DEFAULT_BALANCER (sticky locality); the twins of the multi-level ones
    # use another balancer: "-rr" round-robin and "-ll" least-loaded, the baselines
    # locality is measured against, "-loc" plain locality (the default until sticky
    # locality was measured better; it keeps the figures measured with it
    # reproducible), and "-sticky", the default's balancer by name.
    registry = PolicyRegistry()
    for policy in BUILT_IN_POLICIES:
        if policy.name == "fcfs":
            registry.register(policy.name, _program_aware(policy, "round-robin", None))
            continue
        registry.register(policy.name, _program_aware(policy, DEFAULT_BALANCER))
        if policy.multi_level:
            for suffix, balancer in BALANCER_TWINS.items():
                registry.register(f"{policy.name}{suffix}", _program_aware(policy, balancer))
    # PLAS that pauses whole sessions when their contexts would overflow the KV (not the
    # default: measured against plas on coding-agent only so far).
    registry.register(PAUSE_POLICY, lambda backends: resident_session_scheduler(
        backends, balancer=balancer_named(DEFAULT_BALANCER)))
    return registry


POLICY_REGISTRY = _built_in()
"""The registry the CLI, specs and the benchmark runner read."""


def check_policy(name: str) -> None:
    """Raise `UnknownPolicy` unless `name` is a registered policy."""
    POLICY_REGISTRY.check(name)


def policy_names() -> list[str]:
    return POLICY_REGISTRY.names()


def make_scheduler(policy: str, backends: Sequence[Backend]) -> Scheduler:
    return POLICY_REGISTRY.create(policy, backends)


def register_policy(name: str, factory: SchedulerFactory) -> None:
    POLICY_REGISTRY.register(name, factory)
