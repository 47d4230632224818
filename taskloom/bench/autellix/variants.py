"""Scheduler variants: a policy with its balancer, in-flight cap, levels and beta."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from taskloom.backends.base import Backend
from taskloom.backends.sim import QueuePolicy
from taskloom.bench.autellix.oracle import program_oracle
from taskloom.bench.workloads import Workload
from taskloom.orchestrator.scheduler import ProgramAwareScheduler, SchedulerFactory
from taskloom.orchestrator.scheduler.balancer import DEFAULT_BALANCER, balancer_named
from taskloom.orchestrator.scheduler.program_aware import DEFAULT_MAX_IN_FLIGHT
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.orchestrator.scheduler.registry import split_twin
from taskloom.orchestrator.scheduler.resident_sessions import (
    PAUSE_POLICY,
    resident_session_scheduler,
)


@dataclass(frozen=True)
class Variant:
    """A scheduler configuration, registered under its own policy name."""

    label: str
    policy: str
    balancer: str = DEFAULT_BALANCER
    max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT
    boundaries_s: tuple[float, ...] | None = None
    beta: float | None = None
    engine_policy: QueuePolicy = "priority"

    @property
    def key(self) -> str:
        # Spelled with the effective values, so a variant that names the defaults is
        # the same point as one that leaves them out.
        return f"autellix:{self.label}:{self.setting}"

    @property
    def setting(self) -> str:
        """What the scheduler does, whatever the label."""
        queues = self.queues() or QueueConfig()
        bounds = "-".join(map(str, queues.boundaries_s))
        return (f"{self.policy}:{self.balancer}:{self.max_in_flight}:{bounds}:{queues.beta}:"
                f"{self.engine_policy}")

    def queues(self) -> QueueConfig | None:
        if self.boundaries_s is None and self.beta is None:
            return None
        base = QueueConfig()
        return QueueConfig(
            boundaries_s=self.boundaries_s if self.boundaries_s is not None else base.boundaries_s,
            beta=self.beta if self.beta is not None else base.beta,
        )


def vllm_default() -> Variant:
    return Variant("fcfs", "fcfs", balancer="round-robin", max_in_flight=None,
                   engine_policy="fcfs")


def standard_variant(name: str) -> Variant:
    if name == "fcfs":
        return vllm_default()
    policy, balancer = split_twin(name)
    if balancer is not None:
        return Variant(name, policy, balancer=balancer)
    return Variant(name, name)


def variant_scheduler(variant: Variant, workload: Workload) -> SchedulerFactory:
    """The factory to register under `variant.key` for a point on `workload`."""
    oracle = program_oracle(workload) if variant.policy == "sjf-oracle" else None

    def factory(backends: Sequence[Backend]) -> ProgramAwareScheduler:
        if variant.policy == PAUSE_POLICY:
            return resident_session_scheduler(
                backends,
                queues=variant.queues(),
                max_in_flight=_cap(variant.max_in_flight, backends),
                balancer=balancer_named(variant.balancer),
            )
        return ProgramAwareScheduler(
            backends,
            variant.policy,
            queues=variant.queues(),
            max_in_flight=_cap(variant.max_in_flight, backends),
            balancer=balancer_named(variant.balancer),
            oracle=oracle,
        )

    return factory


def _cap(cap: int | None, backends: Sequence[Backend]) -> int | list[int]:
    if cap is None:
        return [backend.capacity() for backend in backends]
    return [min(cap, backend.capacity()) for backend in backends]
