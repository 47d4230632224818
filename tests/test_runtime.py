"""The embedded API's choice of scheduling policy: the spec's `policy:`, else the default."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from taskloom import runtime as runtime_module
from taskloom.backends.base import Backend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.certainty import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.result import RunStatus
from taskloom.orchestrator.scheduler import ProgramAwareScheduler, Scheduler
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY, make_scheduler
from taskloom.program.load import loads
from taskloom.runtime import Runtime, run_program

SPEC = """
name: p
{policy}
nodes:
  a: {{kind: llm, prompt: hi}}
outputs:
  a: "{{{{ a }}}}"
"""


def test_a_runtime_without_a_scheduler_uses_the_default_policy() -> None:
    runtime = Runtime(ScriptedBackend())
    assert isinstance(runtime.scheduler, ProgramAwareScheduler)
    assert runtime.scheduler.policy.name == DEFAULT_POLICY == "plas"


@pytest.mark.anyio
@pytest.mark.parametrize(("line", "expected"), [("policy: atlas", "atlas"), ("", DEFAULT_POLICY)])
async def test_run_program_schedules_with_the_specs_policy(
    line: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen: list[str] = []

    def recording(policy: str, backends: Sequence[Backend]) -> Scheduler:
        chosen.append(policy)
        return make_scheduler(policy, backends)

    monkeypatch.setattr(runtime_module, "make_scheduler", recording)
    result = await run_program(loads(SPEC.format(policy=line)), backend=ScriptedBackend())
    assert result.status is RunStatus.SUCCEEDED
    assert chosen == [expected]


def test_a_shared_sample_pool_wraps_the_scheduler_only_when_asked() -> None:
    inner = make_scheduler("fcfs", [ScriptedBackend()])
    assert runtime_module.shared_sample_pool(inner, None) is inner
    pooled = runtime_module.shared_sample_pool(inner, 6)
    assert isinstance(pooled, CertaintyAwareScheduler) and pooled.inner is inner
    assert isinstance(pooled.sample_allocator, CertaintyAllocator)
    assert pooled.sample_allocator.slots == 6
