"""Schedulers decide when each LLM call reaches which engine."""

from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.fifo import FifoScheduler
from taskloom.orchestrator.scheduler.program_aware import (
    ProgramAwareScheduler,
    ProgramCancelled,
    SchedulerStats,
)
from taskloom.orchestrator.scheduler.registry import (
    DEFAULT_POLICY,
    make_scheduler,
    policy_names,
    register_policy,
)

__all__ = [
    "DEFAULT_POLICY",
    "FifoScheduler",
    "ProgramAwareScheduler",
    "ProgramCancelled",
    "Scheduler",
    "SchedulerStats",
    "make_scheduler",
    "policy_names",
    "register_policy",
]
