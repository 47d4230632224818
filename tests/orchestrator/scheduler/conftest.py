"""Helpers shared by the scheduler's tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.orchestrator.scheduler.balancer import RouteRequest
from taskloom.orchestrator.scheduler.policies import CallSnapshot
from taskloom.orchestrator.scheduler.records import ScheduledCall

NewCall = Callable[..., ScheduledCall]


def _scheduled_call(call_id: str = "p/c0", max_tokens: int = 10) -> ScheduledCall:
    request = GenerateRequest(call_id=call_id, prompt="hi",
                              sampling=SamplingParams(max_tokens=max_tokens), program_id="p")
    return ScheduledCall(
        request=request,
        snapshot=CallSnapshot(call_id, "p", "main"),
        route=RouteRequest(call_id, "p", 1, None),
        path_start_s=0.0, level=0, rank=0.0, tie_break=(0.0, "p", "main", call_id),
        entered_level_s=0.0, queued_since_s=0.0,
    )


@pytest.fixture
def new_call() -> NewCall:
    """A queued call record of program "p", as the scheduler makes them."""
    return _scheduled_call
