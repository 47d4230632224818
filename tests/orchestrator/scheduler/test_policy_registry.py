"""Policies by name: the built-in ones (`registry.py`) and the registry itself
(`policy_registry.py`): one check, one message, registration scoped to a block."""

from __future__ import annotations

from collections.abc import Sequence

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import Backend, GenerateRequest, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend, SimEngineConfig, StepCostModel
from taskloom.bench.runner import BenchConfig, validate_config
from taskloom.errors import SpecErrors
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.scheduler import (
    DEFAULT_POLICY,
    POLICY_REGISTRY,
    FifoScheduler,
    PolicyRegistry,
    ProgramAwareScheduler,
    Scheduler,
    UnknownPolicy,
    check_policy,
    make_scheduler,
    policy_names,
)
from taskloom.orchestrator.scheduler.balancer import (
    LeastLoadedBalancer,
    LocalityBalancer,
    RoundRobinBalancer,
    StickyLocalityBalancer,
)
from taskloom.orchestrator.scheduler.policies import Policy
from taskloom.orchestrator.scheduler.registry import split_twin
from taskloom.program.models import LLMNode, Program


def test_every_policy_is_registered() -> None:
    assert {"fcfs", "plas", "atlas", "mlfq", "sjf-oracle", "atlas-rr", "plas-rr", "plas-ll",
            "atlas-ll", "plas-sticky", "plas-loc", "atlas-loc", "plas-pause"} <= set(
                policy_names())
    assert DEFAULT_POLICY == "plas"


@pytest.mark.parametrize(
    ("name", "policy", "balancer"),
    [
        ("fcfs", "fcfs", RoundRobinBalancer),
        ("atlas", "atlas", StickyLocalityBalancer),
        ("plas-loc", "plas", LocalityBalancer),
        ("plas-rr", "plas", RoundRobinBalancer),
        ("plas-ll", "plas", LeastLoadedBalancer),
        ("atlas-sticky", "atlas", StickyLocalityBalancer),
        ("sjf-oracle", "sjf-oracle", StickyLocalityBalancer),
    ],
)
def test_make_scheduler_builds_the_named_policy(
    name: str, policy: str, balancer: type
) -> None:
    engines = [ScriptedBackend(max_in_flight=3), ScriptedBackend(max_in_flight=5)]
    scheduler = make_scheduler(name, engines)
    assert isinstance(scheduler, ProgramAwareScheduler)
    assert scheduler.policy.name == policy
    assert isinstance(scheduler.balancer, balancer)


def test_unknown_policy_suggests_a_name() -> None:
    with pytest.raises(UnknownPolicy, match="did you mean 'atlas'"):
        make_scheduler("atals", [ScriptedBackend()])


# ---------------------------------------------------------------- one check, one message


def test_every_way_in_refuses_an_unknown_name_with_one_message() -> None:
    expected = (
        "unknown scheduling policy 'atals' (did you mean 'atlas'?); "
        f"choose from {', '.join(policy_names())}"
    )
    with pytest.raises(UnknownPolicy) as from_check:
        check_policy("atals")
    with pytest.raises(UnknownPolicy) as from_make:
        make_scheduler("atals", [ScriptedBackend()])
    with pytest.raises(UnknownPolicy) as from_bench:
        validate_config(BenchConfig("chat", ("atals",), (1.0,), 1))
    with pytest.raises(SpecErrors) as from_spec:
        compile_program(Program(name="p", policy="atals", nodes={"a": LLMNode(prompt="hi")}))
    assert str(from_check.value) == str(from_make.value) == str(from_bench.value) == expected
    (spec_error,) = from_spec.value.errors
    assert spec_error.message == expected


def test_a_name_close_to_nothing_gets_no_suggestion() -> None:
    registry = PolicyRegistry()
    registry.register("plas", plain_fifo)
    with pytest.raises(UnknownPolicy) as error:
        registry.check("zzzzzz")
    assert str(error.value) == "unknown scheduling policy 'zzzzzz'; choose from plas"
    assert error.value.name == "zzzzzz" and error.value.known == ("plas",)


# ---------------------------------------------------------------- scoped registration


def plain_fifo(backends: Sequence[Backend]) -> Scheduler:
    return FifoScheduler(backends[0])


def test_a_scoped_policy_is_gone_after_the_block() -> None:
    before = policy_names()
    with POLICY_REGISTRY.registered("toy", plain_fifo) as name:
        assert name == "toy" and "toy" in policy_names()
        assert isinstance(make_scheduler("toy", [ScriptedBackend()]), FifoScheduler)
    assert policy_names() == before
    with pytest.raises(UnknownPolicy):
        make_scheduler("toy", [ScriptedBackend()])


def test_a_scoped_policy_over_a_built_in_one_gives_it_back() -> None:
    with POLICY_REGISTRY.registered("plas", plain_fifo):
        assert isinstance(make_scheduler("plas", [ScriptedBackend()]), FifoScheduler)
    assert isinstance(make_scheduler("plas", [ScriptedBackend()]), ProgramAwareScheduler)


def test_a_scoped_policy_is_removed_even_when_the_block_raises() -> None:
    registry = PolicyRegistry()
    with pytest.raises(RuntimeError), registry.registered("toy", plain_fifo):
        raise RuntimeError("boom")
    assert registry.names() == []


# ---------------------------------------------------------------- a toy policy schedules


# Longest call first: the opposite of arrival order for the calls below.
LONGEST_FIRST = Policy(
    "longest-first",
    priority=lambda call, program: -float(call.max_tokens),
    multi_level=False,
    rank_by_priority=True,
    preemptive=False,
    demotes=False,
    starvation="off",
)
UNIT_STEP = StepCostModel(base_s=1.0, prefill_token_s=0.0, decode_seq_s=0.0, context_token_s=0.0)


def one_at_a_time(backends: Sequence[Backend]) -> Scheduler:
    return ProgramAwareScheduler(backends, LONGEST_FIRST, max_in_flight=1)


def finish_order(policy: str) -> list[str]:
    async def main() -> list[str]:
        finished: list[str] = []
        async with SimBackend(SimEngineConfig(max_num_seqs=1), UNIT_STEP) as engine:
            scheduler = make_scheduler(policy, [engine])

            async def submit(call_id: str, max_tokens: int) -> None:
                request = GenerateRequest(
                    call_id=call_id, prompt=f"{call_id} please",
                    sampling=SamplingParams(max_tokens=max_tokens), program_id=call_id,
                )
                await collect(scheduler.submit(request))
                finished.append(call_id)

            async with anyio.create_task_group() as group:
                for call_id, max_tokens in (("a", 2), ("b", 4), ("c", 6)):
                    group.start_soon(submit, call_id, max_tokens)
        return finished

    clock = MockClock(autojump_threshold=0)
    result: list[str] = anyio.run(main, backend="trio", backend_options={"clock": clock})
    return result


def test_a_toy_policy_registered_in_a_test_orders_the_calls() -> None:
    assert finish_order("fcfs") == ["a", "b", "c"]
    with POLICY_REGISTRY.registered("longest-first", one_at_a_time):
        assert finish_order("longest-first") == ["c", "b", "a"]


def test_the_default_policy_keeps_every_slot_of_a_small_engine() -> None:
    """No regret on the embedded engine: the default policy admits as many calls as the
    engine runs at once (16), as fcfs does, and reorders only what waits beyond that."""
    engine = ScriptedBackend(max_in_flight=16)
    default = make_scheduler(DEFAULT_POLICY, [engine])
    fcfs = make_scheduler("fcfs", [engine])
    assert isinstance(default, ProgramAwareScheduler)
    assert isinstance(fcfs, ProgramAwareScheduler)
    assert default.engine_caps() == fcfs.engine_caps() == (16,)


def test_twin_suffixes_name_the_policy_and_its_balancer() -> None:
    assert split_twin("plas-rr") == ("plas", "round-robin")
    assert split_twin("atlas-ll") == ("atlas", "least-loaded")
    assert split_twin("mlfq-sticky") == ("mlfq", "sticky-locality")
    assert split_twin("plas") == ("plas", None)
    assert split_twin("fcfs-rr") == ("fcfs", "round-robin")  # a name, not a registration
    assert "fcfs-rr" not in policy_names()
