"""Scheduler variants of the Autellix benchmark."""

from __future__ import annotations

from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend, SimEngineConfig
from taskloom.bench.autellix.variants import Variant, standard_variant, variant_scheduler
from taskloom.bench.workloads import build_workload
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.balancer import RoundRobinBalancer
from taskloom.orchestrator.scheduler.program_aware import DEFAULT_MAX_IN_FLIGHT
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.orchestrator.scheduler.resident_sessions import (
    DEFAULT_KV_FRACTION,
    PAUSE_POLICY,
    ResidentSessionScheduler,
)


def test_a_variant_that_names_the_defaults_is_the_same_point() -> None:
    defaults = QueueConfig()
    named = Variant("x", "plas", boundaries_s=defaults.boundaries_s, beta=defaults.beta)
    assert named.setting == Variant("y", "plas").setting


def test_standard_variants_read_their_name() -> None:
    assert standard_variant("fcfs").max_in_flight is None
    assert standard_variant("fcfs").engine_policy == "fcfs"
    twin = standard_variant("plas-rr")
    assert (twin.policy, twin.balancer) == ("plas", "round-robin")


def test_a_variant_builds_its_scheduler_with_a_cap_under_each_capacity() -> None:
    workload = build_workload("chat", 2, 0)
    factory = variant_scheduler(Variant("v", "atlas", balancer="round-robin",
                                        max_in_flight=4), workload)
    scheduler = factory([ScriptedBackend(max_in_flight=2), ScriptedBackend(max_in_flight=8)])
    assert isinstance(scheduler, ProgramAwareScheduler)
    assert scheduler.policy.name == "atlas"
    assert isinstance(scheduler.balancer, RoundRobinBalancer)
    assert [scheduler.stats().engines[i].attempts for i in (0, 1)] == [0, 0]


def test_the_pause_variant_builds_a_resident_session_scheduler() -> None:
    workload = build_workload("chat", 2, 0)
    scheduler = variant_scheduler(standard_variant(PAUSE_POLICY), workload)(
        [SimBackend(SimEngineConfig(num_kv_blocks=100, block_size=16))])
    assert isinstance(scheduler, ResidentSessionScheduler)
    assert scheduler.policy.name == "plas"
    assert scheduler.kv_budget_tokens == int(1600 * DEFAULT_KV_FRACTION)
    assert scheduler.engine_caps() == (DEFAULT_MAX_IN_FLIGHT,)
