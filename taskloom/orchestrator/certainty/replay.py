"""Replaying recorded samples under a stopping rule, without an engine.

A recorded query is its samples' answers and lengths, in the order they were drawn.
The replay runs them as `vote` would with `width` samples in flight: every sample
generates one token per step, a finished sample is judged (samples that finish on the
same step together), and only then is its slot given to the next sample. When the rule
fires, the samples still running are aborted; the tokens they generated so far count
as spent. With width 1 this is plain sequential sampling.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskloom.orchestrator.certainty.allocation import FlatCertainty
from taskloom.orchestrator.certainty.measures import certaindex
from taskloom.orchestrator.certainty.rules import StoppingRule
from taskloom.orchestrator.certainty.self_consistency import StopReason
from taskloom.orchestrator.certainty.tally import VoteTally


@dataclass(frozen=True)
class RecordedQuery:
    answers: tuple[str | None, ...]  # normalized; None where unreadable
    lengths: tuple[int, ...]  # generated tokens of each sample
    correct: str | None = None

    def __post_init__(self) -> None:
        if len(self.answers) != len(self.lengths) or not self.answers:
            raise ValueError("a recorded query needs one length per answer, and an answer")


@dataclass(frozen=True)
class ReplayOutcome:
    answer: str | None
    samples_used: int  # samples the vote judged
    samples_launched: int
    tokens: int  # generated tokens spent, aborted samples' partial tokens included
    stop_reason: StopReason
    certainty: float


@dataclass(frozen=True)
class HopelessCut:
    """Stop a query whose certainty is flat at `budget` samples (see `FlatCertainty`)."""

    budget: int
    flat: FlatCertainty = field(default_factory=FlatCertainty)


def replay(
    query: RecordedQuery,
    rule: StoppingRule,
    *,
    width: int = 1,
    hopeless: HopelessCut | None = None,
) -> ReplayOutcome:
    cap = len(query.answers)
    running: list[tuple[int, int, int]] = []  # (end step, index, start step)
    launched = 0
    tally, history = VoteTally(), list[float]()
    for _ in range(min(width, cap)):
        heapq.heappush(running, (query.lengths[launched], launched, 0))
        launched += 1
    spent = 0
    while running:
        now = running[0][0]
        done = _pop_finished(running, now)
        for index, start in done:
            spent += now - start
            tally = tally.with_answer(query.answers[index])
            history.append(certaindex(tally))
        reason = _decide(rule, tally, history, hopeless, cap)
        if reason is not None:
            spent += sum(now - start for _, _, start in running)  # aborted part-way
            return ReplayOutcome(
                tally.leader, tally.samples, launched, spent, reason, history[-1]
            )
        for _ in done:
            if launched < cap:
                heapq.heappush(running, (now + query.lengths[launched], launched, now))
                launched += 1
    raise AssertionError("unreachable: the last sample always ends the replay")


def _pop_finished(running: list[tuple[int, int, int]], now: int) -> list[tuple[int, int]]:
    done: list[tuple[int, int]] = []
    while running and running[0][0] == now:
        _, index, start = heapq.heappop(running)
        done.append((index, start))
    return done


def _decide(
    rule: StoppingRule,
    tally: VoteTally,
    history: Sequence[float],
    hopeless: HopelessCut | None,
    cap: int,
) -> StopReason | None:
    if rule.should_stop(tally):
        return "rule"
    if tally.samples >= cap:
        return "exhausted"
    if hopeless is not None and hopeless.flat.is_hopeless(history, hopeless.budget):
        return "hopeless"
    return None
