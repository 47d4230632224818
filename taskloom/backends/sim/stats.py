"""Counters of a simulated engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SimStats:
    """A snapshot of what the engine has done since it started.

    `prefill_tokens` counts every prompt token computed, recomputation after a preemption
    included; `cached_prompt_tokens` counts the ones the prefix cache saved.

    The `warm_` counters are of KV kept warm across tool calls (`warm_pins`): pins kept,
    taken over by the program's next call, released early under KV pressure, released
    under pressure after their time-to-live, and the prompt tokens of the next calls'
    prefix hits that pinned blocks held. All stay 0 unless requests carry the hint.
    """

    steps: int = 0
    busy_s: float = 0.0
    preemptions: int = 0
    prefill_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    finished_requests: int = 0
    aborted_requests: int = 0
    peak_running: int = 0
    warm_pins_kept: int = 0
    warm_pins_taken_over: int = 0
    warm_pins_released_early: int = 0
    warm_pins_expired: int = 0
    warm_hit_tokens: int = 0

    def busy_fraction(self, elapsed_s: float) -> float:
        """Share of `elapsed_s` the engine spent computing steps."""
        return self.busy_s / elapsed_s if elapsed_s > 0 else 0.0


@dataclass
class StatsTally:
    """The mutable counters behind `SimStats`."""

    steps: int = 0
    busy_s: float = 0.0
    preemptions: int = 0
    prefill_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0
    finished_requests: int = 0
    aborted_requests: int = 0
    peak_running: int = 0
    warm_pins_kept: int = 0
    warm_pins_taken_over: int = 0
    warm_pins_released_early: int = 0
    warm_pins_expired: int = 0
    warm_hit_tokens: int = 0

    def snapshot(self) -> SimStats:
        # The two classes have the same fields (tests/backends/test_sim_stats.py).
        return SimStats(**asdict(self))
