"""Importing the scheduler package registers every policy by name."""

from __future__ import annotations

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.scheduler import (
    DEFAULT_POLICY,
    ProgramAwareScheduler,
    make_scheduler,
    policy_names,
)
from taskloom.orchestrator.scheduler.balancer import LocalityBalancer, RoundRobinBalancer
from taskloom.orchestrator.scheduler.registry import UnknownPolicy


def test_every_policy_is_registered() -> None:
    assert {"fcfs", "plas", "atlas", "mlfq", "sjf-oracle", "atlas-rr", "plas-rr"} <= set(
        policy_names()
    )
    assert DEFAULT_POLICY == "plas"


@pytest.mark.parametrize(
    ("name", "policy", "balancer"),
    [
        ("fcfs", "fcfs", RoundRobinBalancer),
        ("atlas", "atlas", LocalityBalancer),
        ("plas-rr", "plas", RoundRobinBalancer),
        ("sjf-oracle", "sjf-oracle", LocalityBalancer),
    ],
)
def test_make_scheduler_builds_the_named_policy(
    name: str, policy: str, balancer: type
) -> None:
    engines = [ScriptedBackend(max_in_flight=3), ScriptedBackend(max_in_flight=5)]
    scheduler = make_scheduler(name, engines)
    assert isinstance(scheduler, ProgramAwareScheduler)
    assert scheduler.policy.name == policy
    assert isinstance(scheduler.balancer, balancer)


def test_unknown_policy_suggests_a_name() -> None:
    with pytest.raises(UnknownPolicy, match="did you mean 'atlas'"):
        make_scheduler("atals", [ScriptedBackend()])
