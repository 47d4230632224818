"""Counters of a simulated engine."""

from __future__ import annotations

from dataclasses import dataclass


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
        return SimStats(
            steps=self.steps,
            busy_s=self.busy_s,
            preemptions=self.preemptions,
            prefill_tokens=self.prefill_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            generated_tokens=self.generated_tokens,
            finished_requests=self.finished_requests,
            aborted_requests=self.aborted_requests,
            peak_running=self.peak_running,
            warm_pins_kept=self.warm_pins_kept,
            warm_pins_taken_over=self.warm_pins_taken_over,
            warm_pins_released_early=self.warm_pins_released_early,
            warm_pins_expired=self.warm_pins_expired,
            warm_hit_tokens=self.warm_hit_tokens,
        )
