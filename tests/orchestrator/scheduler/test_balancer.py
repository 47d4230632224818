"""Engine choice: locality for long calls, least load for short ones, round-robin,
least-loaded, and sticky locality."""

from __future__ import annotations

import pytest

from taskloom.backends.base import GenerateRequest, Message
from taskloom.orchestrator.scheduler.balancer import (
    EngineLoad,
    EngineTally,
    LeastLoadedBalancer,
    LocalityBalancer,
    RoundRobinBalancer,
    RouteRequest,
    StickyLocalityBalancer,
    balancer_named,
    estimate_prompt_tokens,
)

ENGINES = [EngineLoad(0, 3, 4), EngineLoad(1, 1, 4), EngineLoad(2, 2, 4)]


def route(call_id: str = "c", tokens: int = 100, home: int | None = None) -> RouteRequest:
    return RouteRequest(call_id, "p", tokens, home)


def test_prompt_tokens_are_estimated_from_characters() -> None:
    assert estimate_prompt_tokens(GenerateRequest("c", prompt="x" * 4000)) == 1000
    chat = GenerateRequest("c", messages=(Message("user", "abcd"), Message("user", "ef")),
                           resume_text="gh")
    assert estimate_prompt_tokens(chat) == 2


def test_short_calls_go_to_the_least_loaded_engine() -> None:
    balancer = LocalityBalancer(short_prompt_tokens=2048)
    assert balancer.candidates(route(tokens=2048, home=0), ENGINES) == [1, 2, 0]


def test_long_calls_stay_on_the_engine_holding_their_context() -> None:
    balancer = LocalityBalancer(short_prompt_tokens=2048)
    assert balancer.candidates(route(tokens=2049, home=0), ENGINES) == [0]
    # No context yet, or its engine is gone: least loaded.
    assert balancer.candidates(route(tokens=5000), ENGINES) == [1, 2, 0]
    dead_home = [EngineLoad(0, 0, 4, alive=False), *ENGINES[1:]]
    assert balancer.candidates(route(tokens=5000, home=0), dead_home) == [1, 2]


def test_round_robin_pins_each_call_to_the_next_live_engine() -> None:
    balancer = RoundRobinBalancer()
    balancer.rewind(0.0)
    picks = [balancer.candidates(route(f"c{i}"), ENGINES) for i in range(4)]
    assert picks == [[0], [1], [2], [0]]
    assert balancer.candidates(route("c1"), ENGINES) == [1]  # pinned
    without_1 = [ENGINES[0], EngineLoad(1, 0, 4, alive=False), ENGINES[2]]
    assert balancer.candidates(route("c1"), without_1) == [2]  # re-pinned
    balancer.forget("c1")
    assert balancer.candidates(route("c9"), [EngineLoad(0, 0, 1, alive=False)]) == []


def test_round_robin_rewind_undoes_the_pins_of_the_same_instant() -> None:
    balancer = RoundRobinBalancer()
    balancer.rewind(1.0)
    assert balancer.candidates(route("late"), ENGINES) == [0]
    balancer.rewind(1.0)  # a new pass at the same instant decides again, in queue order
    assert balancer.candidates(route("early"), ENGINES) == [0]
    assert balancer.candidates(route("late"), ENGINES) == [1]
    balancer.rewind(2.0)  # a new instant keeps earlier pins
    assert balancer.candidates(route("late"), ENGINES) == [1]


def test_least_loaded_sends_every_call_to_the_least_loaded_live_engine() -> None:
    balancer = LeastLoadedBalancer()
    # Long or short, with a home or not: load alone decides (ties by index).
    assert balancer.candidates(route(tokens=100, home=0), ENGINES) == [1, 2, 0]
    assert balancer.candidates(route(tokens=9000, home=0), ENGINES) == [1, 2, 0]
    tied = [EngineLoad(0, 2, 4), EngineLoad(1, 1, 2), EngineLoad(2, 0, 4, alive=False)]
    assert balancer.candidates(route(), tied) == [0, 1]  # 2/4 and 1/2: equal loads
    # Load is calls in flight over the cap, not the count of calls.
    assert balancer.candidates(route(), [EngineLoad(0, 3, 4), EngineLoad(1, 6, 16)]) == [1, 0]
    assert balancer.candidates(route(), [EngineLoad(0, 0, 4, alive=False)]) == []


def test_sticky_locality_keeps_short_calls_home_within_the_slack() -> None:
    balancer = StickyLocalityBalancer(slack=0.25)
    # Home (engine 2) holds 2/4, the least-loaded 1/4: within 0.25, so it stays home,
    # short (where plain locality would move it) or long.
    assert balancer.candidates(route(tokens=100, home=2), ENGINES) == [2]
    assert LocalityBalancer().candidates(route(tokens=100, home=2), ENGINES) == [1, 2, 0]
    assert balancer.candidates(route(tokens=9000, home=2), ENGINES) == [2]
    # Home (engine 0) holds 3/4: busier by 0.5, so the call goes by load.
    assert balancer.candidates(route(tokens=100, home=0), ENGINES) == [1, 2, 0]
    assert balancer.candidates(route(tokens=9000, home=0), ENGINES) == [1, 2, 0]
    # No home yet, or home gone: by load.
    assert balancer.candidates(route(tokens=100), ENGINES) == [1, 2, 0]
    gone = [ENGINES[0], ENGINES[1], EngineLoad(2, 2, 4, alive=False)]
    assert balancer.candidates(route(tokens=100, home=2), gone) == [1, 0]


def test_engine_tally_reports_the_prefix_cache_hit_rate() -> None:
    assert EngineTally().prefix_cache_hit_rate == 0.0
    assert EngineTally(prompt_tokens=400, cached_prompt_tokens=300).prefix_cache_hit_rate == 0.75


def test_balancers_by_name() -> None:
    assert isinstance(balancer_named("locality", 100), LocalityBalancer)
    assert isinstance(balancer_named("round-robin"), RoundRobinBalancer)
    assert isinstance(balancer_named("least-loaded"), LeastLoadedBalancer)
    assert isinstance(balancer_named("sticky-locality"), StickyLocalityBalancer)
    with pytest.raises(ValueError, match="least-loaded"):
        balancer_named("random")
