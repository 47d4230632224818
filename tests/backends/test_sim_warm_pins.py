"""KV kept warm across tool calls in the simulated engine, as a pure state machine:
pins held across a tool gap, released on pressure (expired first, then the lowest
priority), and taken over by the program's next call."""

from __future__ import annotations

from taskloom.backends.sim import SimEngine, SimEngineConfig, StepCostModel
from taskloom.backends.sim.request import RequestStatus, SimRequest

COST = StepCostModel(base_s=1.0, prefill_token_s=0.01, decode_seq_s=0.1, context_token_s=0.001)
# 16 blocks of 4 tokens: a few short requests fill it.
CONFIG = SimEngineConfig(max_num_seqs=8, num_kv_blocks=16, block_size=4,
                         max_num_batched_tokens=64, enable_prefix_caching=True)


class Clocked:
    """An engine driven step by step on a clock of its own (each step takes its time)."""

    def __init__(self) -> None:
        self.engine = SimEngine(CONFIG, COST)
        self.now = 0.0

    def run(self, request: SimRequest) -> SimRequest:
        while request.status is not RequestStatus.FINISHED:
            plan = self.engine.schedule(self.now)
            self.now += plan.seconds
            self.engine.complete(plan, self.now)
        return request

    def wait(self, seconds: float) -> None:
        """A tool call: time passes, the engine idles."""
        self.now += seconds


def tokens(count: int, start: int) -> list[int]:
    return list(range(start, start + count))


def session_with_tool_gap(keep_warm_s: float | None) -> tuple[Clocked, SimRequest]:
    """Program A's call (6 full blocks), then while A's tool runs, C runs and ends (its
    blocks freed after A's) and B needs 8 blocks; then A's next call. Unpinned, B's
    blocks come from the oldest freed, A's tail; pinned, from C's."""
    clocked = Clocked()
    engine = clocked.engine
    first = clocked.run(engine.submit(tokens(24, 0), 2, program_id="A", keep_warm_s=keep_warm_s))
    clocked.wait(1.0)
    clocked.run(engine.submit(tokens(16, 500), 1, program_id="C"))
    clocked.run(engine.submit(tokens(32, 1000), 1, program_id="B"))
    clocked.wait(1.0)
    follow_up = [*first.tokens, *tokens(4, 2000)]
    second = clocked.run(engine.submit(follow_up, 1, program_id="A", keep_warm_s=keep_warm_s))
    return clocked, second


def test_a_pin_held_across_the_tool_gap_gives_the_prefix_hit_the_unpinned_run_misses() -> None:
    _, unpinned = session_with_tool_gap(keep_warm_s=None)
    clocked, pinned = session_with_tool_gap(keep_warm_s=30.0)
    assert unpinned.cached_prompt_tokens == 16  # B evicted A's last two full blocks
    assert pinned.cached_prompt_tokens == 24  # all six of A's full blocks
    stats = clocked.engine.stats()
    assert stats.warm_pins_kept == 2  # A's first call, then its second (nothing follows)
    assert stats.warm_pins_taken_over == 1
    assert stats.warm_hit_tokens == 24
    assert stats.warm_pins_released_early == stats.warm_pins_expired == 0
    assert stats.preemptions == 0


def test_without_hints_nothing_is_pinned_and_no_warm_counter_moves() -> None:
    clocked, _ = session_with_tool_gap(keep_warm_s=None)
    stats = clocked.engine.stats()
    assert len(clocked.engine.pins) == 0
    assert (stats.warm_pins_kept, stats.warm_pins_taken_over, stats.warm_hit_tokens) == (0, 0, 0)
    assert clocked.engine.kv.num_free_blocks == CONFIG.num_kv_blocks


def pin_two(priorities: tuple[int, int], ttls: tuple[float, float]) -> Clocked:
    """Programs A and B each end a call holding 5 pinned blocks (10 of 16)."""
    clocked = Clocked()
    for name, start, priority, ttl in zip("AB", (0, 100), priorities, ttls, strict=True):
        request = clocked.engine.submit(tokens(20, start), 1, priority, program_id=name,
                                        keep_warm_s=ttl)
        clocked.run(request)
    assert len(clocked.engine.pins) == 2
    assert clocked.engine.pins.pinned_blocks == 10
    return clocked


def next_call_hits(clocked: Clocked, program: str, start: int) -> int:
    request = clocked.engine.submit(tokens(20, start), 1, program_id=program)
    return clocked.run(request).cached_prompt_tokens or 0


def test_under_kv_pressure_the_lower_priority_programs_pin_goes_first() -> None:
    clocked = pin_two(priorities=(0, 5), ttls=(100.0, 100.0))
    # 9 blocks needed, 6 free: one pin must go; B's program has the lower priority.
    clocked.run(clocked.engine.submit(tokens(36, 5000), 1, program_id="X"))
    stats = clocked.engine.stats()
    assert stats.warm_pins_released_early == 1 and stats.preemptions == 0
    assert next_call_hits(clocked, "A", 0) == 16  # A kept all its 4 full prompt blocks
    assert next_call_hits(clocked, "B", 100) < 16


def test_a_pin_past_its_ttl_goes_before_a_live_pin_of_any_priority() -> None:
    # B's program has the higher priority, but its pin has expired when KV runs short.
    clocked = pin_two(priorities=(5, 0), ttls=(100.0, 1.0))
    clocked.wait(10.0)
    clocked.run(clocked.engine.submit(tokens(36, 5000), 1, program_id="X"))
    stats = clocked.engine.stats()
    assert stats.warm_pins_expired == 1 and stats.warm_pins_released_early == 0
    assert next_call_hits(clocked, "A", 0) == 16
    assert next_call_hits(clocked, "B", 100) < 16


def test_pins_are_released_before_any_running_request_is_preempted() -> None:
    clocked = pin_two(priorities=(0, 0), ttls=(100.0, 100.0))
    # 4 blocks free; the request grows to 15 blocks: both pins go, nothing is preempted.
    clocked.run(clocked.engine.submit(tokens(8, 5000), 50, program_id="X"))
    stats = clocked.engine.stats()
    assert stats.warm_pins_released_early == 2
    assert stats.preemptions == 0
    assert len(clocked.engine.pins) == 0


def test_a_released_pins_blocks_are_evicted_before_older_free_blocks() -> None:
    clocked = Clocked()
    engine = clocked.engine
    clocked.run(engine.submit(tokens(20, 0), 1, program_id="C"))  # freed, not pinned
    clocked.run(engine.submit(tokens(20, 100), 1, program_id="A", keep_warm_s=100.0))
    # 12 blocks needed, 11 free: A's pin goes, and X takes A's blocks before C's.
    clocked.run(engine.submit(tokens(48, 5000), 1, program_id="X"))
    assert engine.stats().warm_pins_released_early == 1
    assert next_call_hits(clocked, "C", 0) == 16  # only C's tail block was taken
    assert next_call_hits(clocked, "A", 100) == 0
