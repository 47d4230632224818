"""The runner on the simulated engine: rows, timing, determinism, refused settings."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from taskloom.backends.base import Backend
from taskloom.backends.sim import SimEngineConfig, StepCostModel
from taskloom.bench.metrics import ProgramOutcome
from taskloom.bench.runner import (
    FIRST_AND_LAST,
    BenchConfig,
    BenchUsageError,
    SimEngines,
    SimSetup,
    run_benchmark,
    run_on_virtual_time,
    run_point,
    stream_interval_for,
    validate_config,
)
from taskloom.bench.workloads import UnknownWorkload, Workload, WorkloadOptions, build_workload
from taskloom.bench.workloads.base import BenchProgram
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.orchestrator.scheduler import (
    POLICY_REGISTRY,
    FifoScheduler,
    ProgramAwareScheduler,
    Scheduler,
    SchedulerStats,
)
from taskloom.orchestrator.scheduler.registry import UnknownPolicy
from taskloom.program.models import LLMNode, Program, ToolNode

REQUIRED_FIELDS = {
    "workload", "policy", "rate", "programs", "mean_latency_s", "p50_latency_s",
    "p95_latency_s", "p99_latency_s", "max_latency_s", "mean_token_latency_s",
    "throughput_programs_per_s", "preemptions", "generated_tokens", "busy_fraction",
}


def plain_fifo(backends: Sequence[Backend]) -> Scheduler:
    return FifoScheduler(backends[0])


@pytest.fixture
def twin_policy() -> Iterator[str]:
    """A second policy under another name, registered for this test only."""
    with POLICY_REGISTRY.registered("fifo-twin", plain_fifo) as name:
        yield name


def small_config(policies: tuple[str, ...] = ("fcfs",), **changes: object) -> BenchConfig:
    settings: dict[str, object] = {
        "workload": "chat", "policies": policies, "rates": (1.0, 8.0), "programs": 4,
        "seed": 11, "options": WorkloadOptions(max_output_tokens=40),
    }
    settings.update(changes)
    return BenchConfig(**settings)  # type: ignore[arg-type]


def test_two_policies_at_two_rates_give_four_full_rows(twin_policy: str) -> None:
    rows = run_benchmark(small_config(("fcfs", twin_policy)))
    assert [(r.policy, r.rate) for r in rows] == [
        ("fcfs", 1.0), ("fcfs", 8.0), (twin_policy, 1.0), (twin_policy, 8.0)
    ]
    for row in rows:
        data = row.to_json()
        assert set(data) >= REQUIRED_FIELDS
        assert row.workload == "chat" and row.programs == 4 and row.failed_programs == 0
        assert row.p50_latency_s is not None and row.p99_latency_s is not None
        assert 0 < row.p50_latency_s <= row.p99_latency_s <= row.max_latency_s  # type: ignore[operator]
        assert row.generated_tokens > 0 and row.preemptions == 0
        assert row.busy_fraction is not None and 0 < row.busy_fraction <= 1


def test_the_same_seed_gives_the_same_numbers(twin_policy: str) -> None:
    config = small_config(("fcfs", twin_policy), workload="tool-use")
    first = [row.to_json() for row in run_benchmark(config)]
    again = [row.to_json() for row in run_benchmark(config)]
    assert first == again


def test_latency_is_finish_minus_arrival_on_virtual_time() -> None:
    # One call of 5 tokens on an engine whose every step takes 1 s: prefill plus first
    # token in one step, then 4 decode steps.
    program = Program(name="one", nodes={"a": LLMNode(prompt="hello there", max_tokens=5)})
    workload = Workload("one", (BenchProgram(program, {}, "chat", "x", 1),), workload_tools())
    setup = SimSetup(engine=SimEngineConfig(), cost=StepCostModel(1.0, 0.0, 0.0, 0.0))
    config = small_config(("fcfs",), programs=1)
    point = run_on_virtual_time(run_point, config, workload, "fcfs", 3.0, SimEngines(setup),
                                lambda outcome: None)
    row = point.row
    assert row.mean_latency_s == 5.0
    assert row.generated_tokens == 5 and row.engine_steps == 5
    assert row.mean_token_latency_s == 1.0


def test_programs_that_overload_the_engine_queue_up() -> None:
    # Same work, arriving 8x faster: later programs wait behind earlier ones.
    slow, fast = run_benchmark(small_config(("fcfs",), rates=(0.05, 50.0)))
    assert fast.mean_latency_s > slow.mean_latency_s  # type: ignore[operator]


def test_coding_agent_sessions_run_end_to_end_on_virtual_time() -> None:
    # Three long sessions (tens of turns, contexts of tens of thousands of tokens) through
    # the runner on the default simulated H100, under a program-aware policy.
    config = BenchConfig(workload="coding-agent", policies=("plas",), rates=(0.05,),
                         programs=3, seed=1)
    workload = build_workload("coding-agent", 3, 1, config.options)
    tool_time = [
        sum(float(node.args["latency_s"]) for node in p.program.nodes.values()
            if isinstance(node, ToolNode))
        for p in workload.programs
    ]
    outcomes: list[ProgramOutcome] = []
    rows = run_benchmark(config, on_program_done=outcomes.append)
    for row in rows:
        assert row.workload == "coding-agent" and row.failed_programs == 0
        assert row.llm_calls == workload.llm_calls
        # Every call re-sends the session so far: nearly all of its prompt is cached.
        assert row.cached_prompt_tokens > 0.9 * row.prompt_tokens
        assert row.prompt_tokens > 10_000 * row.llm_calls
    assert len(outcomes) == 3
    for outcome in outcomes:
        # A session waits for each of its tools in turn, and for its calls besides.
        assert outcome.latency_s > tool_time[outcome.index]
        assert outcome.llm_calls == workload.programs[outcome.index].llm_calls


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"workload": "chats"}, UnknownWorkload, "did you mean 'chat'"),
        ({"policies": ("fcfs", "nope")}, UnknownPolicy, "unknown scheduling policy 'nope'"),
        ({"rates": (1.0, 0.0)}, BenchUsageError, "must be > 0"),
        ({"rates": (-2.0,)}, BenchUsageError, "must be > 0"),
        ({"programs": 0}, BenchUsageError, "at least 1"),
        ({"engines": 0}, BenchUsageError, "at least 1"),
    ],
)
def test_settings_that_cannot_run_are_refused_up_front(
    changes: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        validate_config(small_config(**changes))  # type: ignore[arg-type]


SMALL_ENGINE = SimEngineConfig(max_num_seqs=6)
"""Six calls in flight: a few programs fill it, so the preemptive policies preempt."""


def mixed_config(policy: str, programs: int, **changes: object) -> BenchConfig:
    settings: dict[str, object] = {
        "workload": "mixed", "policies": (policy,), "rates": (8.0,), "programs": programs,
        "seed": 3, "options": WorkloadOptions(max_output_tokens=120),
        "sim": SimSetup(engine=SMALL_ENGINE),
    }
    settings.update(changes)
    return BenchConfig(**settings)  # type: ignore[arg-type]


def test_twenty_mixed_programs_give_identical_rows_twice() -> None:
    # plas preempts and demotes, so it acts on events that share an instant.
    config = mixed_config("plas", 20, options=WorkloadOptions(max_output_tokens=60))
    workload = build_workload("mixed", 20, config.seed, config.options)
    source = SimEngines(config.sim.for_policy("plas"))

    def run() -> tuple[dict[str, object], SchedulerStats]:
        point = run_on_virtual_time(run_point, config, workload, "plas", 8.0, source,
                                    lambda outcome: None)
        assert isinstance(point.scheduler, ProgramAwareScheduler)
        return point.row.to_json(), point.scheduler.stats()

    first, stats = run()
    assert stats.preemptions > 0 and first["failed_programs"] == 0
    assert run()[0] == first


def test_the_default_fast_path_gives_fcfs_the_numbers_of_a_chunk_per_token() -> None:
    fast = run_benchmark(mixed_config("fcfs", 12))[0].to_json()
    per_token = SimSetup(engine=SMALL_ENGINE, stream_interval=1, fast_forward=False)
    slow = run_benchmark(mixed_config("fcfs", 12, sim=per_token))[0].to_json()
    assert fast["failed_programs"] == 0
    assert fast == slow


def test_each_policy_streams_as_coarsely_as_it_allows() -> None:
    assert stream_interval_for("fcfs") == FIRST_AND_LAST
    for preempting in ("sjf-oracle", "plas", "plas-rr", "plas-ll", "plas-sticky", "atlas",
                       "mlfq"):
        assert stream_interval_for(preempting) == 1
    assert stream_interval_for("someone-elses-policy") == 1
    assert SimSetup().for_policy("fcfs").stream_interval == FIRST_AND_LAST
    assert SimSetup(stream_interval=3).for_policy("fcfs").stream_interval == 3
