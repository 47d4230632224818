"""The embedded API: which scheduling policy a run uses (`run(policy=)`, else the spec's
`policy:`, else the runtime's), and how a run is cancelled without losing its result."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest

from taskloom import runtime as runtime_module
from taskloom.backends.base import Backend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import TaskloomError
from taskloom.orchestrator.certainty import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.result import NodeStatus, RunStatus
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
    scheduler = runtime.scheduler_for(runtime.policy)
    assert isinstance(scheduler, ProgramAwareScheduler)
    assert scheduler.policy.name == DEFAULT_POLICY == "plas"
    assert runtime.scheduler_for("plas") is scheduler  # one per policy, shared by runs


def test_an_unknown_policy_fails_when_the_runtime_is_made() -> None:
    with pytest.raises(TaskloomError, match="unknown scheduling policy 'plass'"):
        Runtime(ScriptedBackend(), policy="plass")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("line", "override", "expected"),
    [("policy: atlas", None, "atlas"), ("", None, "fcfs"), ("policy: atlas", "mlfq", "mlfq")],
)
async def test_runtime_run_honours_the_specs_policy_unless_overridden(
    line: str, override: str | None, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen: list[str] = []

    def recording(policy: str, backends: Sequence[Backend]) -> Scheduler:
        chosen.append(policy)
        return make_scheduler(policy, backends)

    monkeypatch.setattr(runtime_module, "make_scheduler", recording)
    runtime = Runtime(ScriptedBackend(), policy="fcfs")
    result = await runtime.run(loads(SPEC.format(policy=line)), policy=override)
    assert result.status is RunStatus.SUCCEEDED
    assert chosen[-1] == expected


@pytest.mark.anyio
async def test_a_runtime_around_its_own_scheduler_uses_it_for_every_run() -> None:
    backend = ScriptedBackend()
    own = make_scheduler("fcfs", [backend])
    runtime = Runtime(backend, scheduler=own)
    await runtime.run(loads(SPEC.format(policy="policy: atlas")))
    assert runtime.scheduler_for("atlas") is own


@pytest.mark.anyio
async def test_setting_cancel_ends_the_run_with_its_partial_result() -> None:
    spec = """
name: c
nodes:
  quick: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  slow: {kind: llm, prompt: "one {{ quick }}"}
"""
    backend = ScriptedBackend(delay_s=10)
    cancel = anyio.Event()

    async def cancel_soon() -> None:
        # Once the slow call is in the engine (so `quick`, which it reads, has finished),
        # however long a loaded machine took to get there.
        while not backend.seen:
            await anyio.sleep(0.01)
        cancel.set()

    async with anyio.create_task_group() as group:
        group.start_soon(cancel_soon)
        result = await Runtime(backend).run(loads(spec), cancel=cancel)
    assert result.status is RunStatus.CANCELLED
    assert result.nodes["quick"].output == 42
    assert result.nodes["slow"].status is NodeStatus.CANCELLED
    assert backend.aborted == [backend.seen[0].call_id]


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
    assert chosen[-1] == expected  # the run's scheduler is the last one made


def test_a_shared_sample_pool_wraps_the_scheduler_only_when_asked() -> None:
    inner = make_scheduler("fcfs", [ScriptedBackend()])
    assert runtime_module.shared_sample_pool(inner, None) is inner
    pooled = runtime_module.shared_sample_pool(inner, 6)
    assert isinstance(pooled, CertaintyAwareScheduler) and pooled.inner is inner
    assert isinstance(pooled.sample_allocator, CertaintyAllocator)
    assert pooled.sample_allocator.slots == 6
