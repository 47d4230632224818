"""One attempt, and the request that resumes a call after the text it produced."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from taskloom.orchestrator.scheduler.attempt import resume_request, stop_attempt
from taskloom.orchestrator.scheduler.records import ScheduledCall


def test_a_resumed_request_continues_the_text_with_the_rest_of_the_budget(
    new_call: Callable[..., ScheduledCall],
) -> None:
    call = new_call(max_tokens=10)
    call.text_parts, call.generated_tokens = ["one ", "two "], 4
    request = resume_request(call, priority=2)
    assert request.resume_text == "one two "
    assert request.sampling.max_tokens == 6 and request.priority == 2
    call.generated_tokens = 10
    assert resume_request(call, priority=0).sampling.max_tokens == 1


def test_stopping_an_attempt_banks_its_service_and_aborts_its_wait(
    new_call: Callable[..., ScheduledCall],
) -> None:
    async def main() -> None:
        call = new_call()
        call.engine, call.attempt_started_s, call.service_s = 0, 2.0, 1.0
        with anyio.CancelScope() as scope:
            call.attempt_scope = scope
            stop_attempt(call, 5.0)
            await anyio.sleep_forever()  # the abort ends the wait
        assert scope.cancelled_caught
        assert call.service_s == 4.0 and call.engine is None and call.attempt_started_s is None

    anyio.run(main, backend="trio")
