"""Schedulers decide when each LLM call reaches which engine."""

from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.fifo import FifoScheduler
from taskloom.orchestrator.scheduler.policy_registry import (
    PolicyRegistry,
    SchedulerFactory,
    UnknownPolicy,
)
from taskloom.orchestrator.scheduler.program_aware import ProgramAwareScheduler, ProgramCancelled
from taskloom.orchestrator.scheduler.records import SchedulerStats
from taskloom.orchestrator.scheduler.registry import (
    DEFAULT_POLICY,
    POLICY_REGISTRY,
    check_policy,
    make_scheduler,
    policy_names,
    register_policy,
)

__all__ = [
    "DEFAULT_POLICY",
    "POLICY_REGISTRY",
    "FifoScheduler",
    "PolicyRegistry",
    "ProgramAwareScheduler",
    "ProgramCancelled",
    "Scheduler",
    "SchedulerFactory",
    "SchedulerStats",
    "UnknownPolicy",
    "check_policy",
    "make_scheduler",
    "policy_names",
    "register_policy",
]
