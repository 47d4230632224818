"""Schedulers decide when each LLM call reaches which engine."""

from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.fifo import FifoScheduler

__all__ = ["FifoScheduler", "Scheduler"]
