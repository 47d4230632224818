"""Each policy is a pure function of a call and its program's row."""

from __future__ import annotations

import pytest

from taskloom.orchestrator.scheduler.policies import (
    POLICIES,
    CallSnapshot,
    ProgramSnapshot,
    atlas,
    fcfs,
    get_policy,
    mlfq,
    plas,
    sjf_oracle,
    starvation_measure,
)
from taskloom.orchestrator.scheduler.policy_registry import UnknownPolicy
from taskloom.orchestrator.scheduler.queues import QueueConfig

PROGRAM = ProgramSnapshot(
    program_id="p",
    attained_service_s=12.0,
    waiting_s=3.0,
    critical_path_s=9.0,
    thread_critical_path_s={"plan": 4.0, "search/0": 9.0},
    call_path_end_s={"plan-call": 4.0, "search-0": 9.0, "search-1": 7.0},
)


def snapshot(**overrides: object) -> CallSnapshot:
    fields: dict[str, object] = {"call_id": "c", "program_id": "p", "thread_id": "answer"}
    fields.update(overrides)
    return CallSnapshot(**fields)  # type: ignore[arg-type]


def test_fcfs_and_mlfq_treat_every_call_alike() -> None:
    assert fcfs(snapshot(), PROGRAM) == 0.0
    assert mlfq(snapshot(), PROGRAM) == 0.0


def test_plas_is_the_programs_attained_service() -> None:
    assert plas(snapshot(), PROGRAM) == 12.0
    assert plas(snapshot(), ProgramSnapshot("new")) == 0.0


def test_atlas_is_the_longest_path_through_the_parents() -> None:
    # Two parallel searches ended at 9 and 7; the join continues the longer path, not
    # the program's total (12), so parallel threads are not punished for running wide.
    assert atlas(snapshot(parent_call_ids=("search-0", "search-1")), PROGRAM) == 9.0
    assert atlas(snapshot(parent_call_ids=("plan-call",)), PROGRAM) == 4.0


def test_atlas_without_known_parents_continues_its_thread_then_the_program() -> None:
    assert atlas(snapshot(thread_id="plan"), PROGRAM) == 4.0
    assert atlas(snapshot(parent_call_ids=("unknown",)), PROGRAM) == 9.0
    assert atlas(snapshot(), ProgramSnapshot("new")) == 0.0


def test_sjf_oracle_uses_the_remaining_work_or_the_calls_length() -> None:
    assert sjf_oracle(snapshot(remaining_work=42.0, max_tokens=7), PROGRAM) == 42.0
    assert sjf_oracle(snapshot(max_tokens=7), PROGRAM) == 7.0


def test_starvation_measure_by_basis() -> None:
    assert starvation_measure("program", 2.0, 1.0, 3.0, 12.0) == (5.0, 13.0)
    assert starvation_measure("call", 2.0, 1.0, 3.0, 12.0) == (2.0, 1.0)
    assert starvation_measure("off", 2.0, 1.0, 3.0, 12.0) == (0.0, 1.0)


def test_policy_records_say_how_calls_are_treated() -> None:
    configured = QueueConfig(boundaries_s=(1.0, 2.0))
    assert POLICIES["fcfs"].queue_config(configured).levels == 1
    assert not POLICIES["fcfs"].preemptive
    for name in ("mlfq", "plas", "atlas"):
        policy = POLICIES[name]
        assert policy.queue_config(configured) is configured
        assert policy.preemptive and policy.demotes
    assert POLICIES["mlfq"].starvation == "call"
    assert POLICIES["atlas"].starvation == POLICIES["plas"].starvation == "program"
    oracle = POLICIES["sjf-oracle"]
    assert oracle.rank_by_priority and oracle.preemptive and not oracle.demotes


def test_get_policy_names_the_choices() -> None:
    assert get_policy("atlas").priority is atlas
    with pytest.raises(UnknownPolicy, match="did you mean 'atlas'"):
        get_policy("atlsa")
