"""The scheduler of a continuous-batching engine, as a pure state machine.

Each step the engine first gives every running request its next tokens (one for a
decoding request, the next chunk for a prefilling one) within the step's token budget,
preempting running requests by recompute when KV blocks run out. Only if nothing was
preempted does it admit waiting requests, in queue order, while the budget, the
`max_num_seqs` limit and the KV cache allow; the first that does not fit stops admission.
This is the shape of vLLM's V1 scheduler. Nothing here sleeps: `schedule()` says what a
step computes and how long it takes, `complete()` applies it.

A request with a keep-warm hint keeps its KV pinned after it finishes (`warm_pins`);
when blocks run short, pins are released before anything is preempted. The engine
needs the time only for that, so `schedule` and `complete` take the current time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

from taskloom.backends.sim.config import SimEngineConfig
from taskloom.backends.sim.cost import StepBatch, StepCostModel
from taskloom.backends.sim.decode_run import (
    complete_decode_steps,
    decode_horizon,
    decode_step_seconds,
)
from taskloom.backends.sim.kv_cache import KVBlock, KVCache
from taskloom.backends.sim.request import RequestStatus, SimRequest
from taskloom.backends.sim.stats import SimStats, StatsTally
from taskloom.backends.sim.tokens import FILLER_TOKEN_ID
from taskloom.backends.sim.waiting import make_waiting_queue
from taskloom.backends.sim.warm_pins import WarmPins
from taskloom.errors import BackendError


class ScheduledWork(NamedTuple):
    """One request's share of a step: `num_tokens` new tokens on top of its context.
    (A named tuple: the engine makes one per running request per step, and a tuple is
    the cheapest immutable record to build.)"""

    request: SimRequest
    num_tokens: int
    is_decode: bool
    context_tokens: int


@dataclass(frozen=True)
class StepPlan:
    work: tuple[ScheduledWork, ...]
    batch: StepBatch
    seconds: float

    @property
    def is_empty(self) -> bool:
        return not self.work


_new_work = tuple.__new__


@dataclass
class _StepDraft:
    """The step being scheduled. The batch's sums are kept as work is added and dropped
    (integers, so the order of additions cannot change them)."""

    budget: int
    work: list[ScheduledWork] = field(default_factory=list)
    preempted: bool = False
    prefill_tokens: int = 0
    decode_seqs: int = 0
    context_tokens: int = 0

    def add(self, request: SimRequest, num_tokens: int) -> None:
        computed = request.num_computed_tokens
        # `SimRequest.is_decoding`, inlined: this runs for every running request each step.
        is_decode = request.num_output_tokens > 0 and len(request.tokens) - computed == 1
        context = computed + num_tokens
        # The tuple built directly: a named tuple's own constructor is a Python call.
        self.work.append(_new_work(ScheduledWork, (request, num_tokens, is_decode, context)))
        self.budget -= num_tokens
        if is_decode:
            self.decode_seqs += 1
        else:
            self.prefill_tokens += num_tokens
        self.context_tokens += context

    def drop(self, request: SimRequest) -> None:
        for index, work in enumerate(self.work):
            if work.request is request:
                self.budget += work.num_tokens
                del self.work[index]
                if work.is_decode:
                    self.decode_seqs -= 1
                else:
                    self.prefill_tokens -= work.num_tokens
                self.context_tokens -= work.context_tokens
                return

    def batch(self) -> StepBatch:
        return StepBatch(self.prefill_tokens, self.decode_seqs, self.context_tokens)


class SimEngine:
    """Waiting queue, running list and KV cache of one simulated engine."""

    def __init__(self, config: SimEngineConfig, cost: StepCostModel) -> None:
        self.config = config
        self.cost = cost
        self.kv = KVCache(config.num_kv_blocks, config.block_size)
        self.waiting = make_waiting_queue(config.policy)
        self.running: list[SimRequest] = []
        self._tally = StatsTally()
        self._ids = itertools.count()
        self.pins = WarmPins(self.kv, self._tally)
        self._now_s = 0.0

    @property
    def has_work(self) -> bool:
        return bool(self.running) or len(self.waiting) > 0

    def stats(self) -> SimStats:
        return self._tally.snapshot()

    def submit(
        self,
        tokens: list[int],
        output_tokens: int,
        priority: int = 0,
        *,
        program_id: str = "",
        keep_warm_s: float | None = None,
    ) -> SimRequest:
        """Queue a request that will generate exactly `output_tokens` tokens; with
        `keep_warm_s` and a `program_id`, its KV stays pinned that long once it ends."""
        request_id = next(self._ids)
        self.check_fits(len(tokens), output_tokens)
        request = SimRequest(request_id, request_id, priority, list(tokens), output_tokens,
                             program_id=program_id, keep_warm_s=keep_warm_s)
        self.waiting.add(request)
        return request

    def abort(self, request: SimRequest) -> None:
        if request.status is RequestStatus.RUNNING:
            self.running.remove(request)
            self._release(request)
        elif request.status is RequestStatus.WAITING:
            self.waiting.remove(request)
        else:
            return
        request.status = RequestStatus.ABORTED
        self._tally.aborted_requests += 1

    def schedule(self, now_s: float = 0.0) -> StepPlan:
        """The next step, at time `now_s` (read only to tell expired pins)."""
        self._now_s = now_s
        draft = _StepDraft(budget=self.config.max_num_batched_tokens)
        self._schedule_running(draft)
        if not draft.preempted:
            self._admit_waiting(draft)
        batch = draft.batch()
        return StepPlan(tuple(draft.work), batch, self.cost.step_time(batch))

    def complete(self, plan: StepPlan, now_s: float = 0.0) -> list[SimRequest]:
        """Apply a step that has run, ending at `now_s` (the start of the time-to-live of
        pins it makes); return the requests that got a new token."""
        self._now_s = now_s
        self._tally.steps += 1
        self._tally.busy_s += plan.seconds
        self._tally.prefill_tokens += plan.batch.prefill_tokens
        advanced: list[SimRequest] = []
        running = RequestStatus.RUNNING
        block_size = self.kv.block_size
        generated = 0
        # One pass over every running request each step, so the advance is inlined.
        for request, num_tokens, _, _ in plan.work:
            # A request aborted while its step ran has already given its blocks back.
            if request.status is not running:
                continue
            request.num_computed_tokens += num_tokens
            if request.num_computed_tokens // block_size != request.num_remembered_blocks:
                self._remember_full_blocks(request)  # not the common decode step
            if len(request.tokens) > request.num_computed_tokens:
                continue  # a prefill chunk short of the end samples nothing
            request.tokens.append(FILLER_TOKEN_ID)
            request.num_output_tokens += 1
            generated += 1
            if request.num_output_tokens >= request.target_output_tokens:
                self._finish(request)
            advanced.append(request)
        self._tally.generated_tokens += generated
        return advanced

    def decode_horizon(self, limit: int) -> int:
        """How many of the next steps are certain to be decode-only steps of the running
        requests that admit, preempt and finish nothing before the last of them (which
        may finish some); at most `limit`, 0 if the next step is not one."""
        return decode_horizon(self.running, len(self.waiting), self.config, self.kv, limit)

    def decode_step_seconds(self, steps: int) -> list[float]:
        """The modelled time of each of the next `steps` steps, if they are decode-only
        steps of the running requests (see `decode_horizon`)."""
        return decode_step_seconds(self.running, self.cost, steps)

    def complete_decode_steps(self, seconds: list[float]) -> None:
        """Apply `len(seconds)` decode-only steps at once, exactly as scheduling and
        completing them one by one would; `decode_horizon` must have promised more than
        that many, so that none of them finishes a request."""
        complete_decode_steps(self.running, seconds, self.config, self.kv, self._tally)

    def check_fits(self, num_prompt_tokens: int, output_tokens: int) -> None:
        """Raise `BackendError` for a request that could not run even alone."""
        # The last sampled token is never fed back, so it needs no KV slot.
        longest = num_prompt_tokens + output_tokens - 1
        if self.kv.blocks_for(longest) > self.config.num_kv_blocks:
            raise BackendError(
                f"request needs {longest} tokens of KV cache; the simulated engine has "
                f"{self.config.kv_capacity_tokens}"
            )

    def _schedule_running(self, draft: _StepDraft) -> None:
        block_size = self.kv.block_size
        running = RequestStatus.RUNNING
        work = draft.work
        for request in list(self.running):
            if draft.budget <= 0:
                return
            if request.status is not running:
                continue  # preempted earlier in this loop
            computed = request.num_computed_tokens
            uncomputed = len(request.tokens) - computed
            if (uncomputed == 1 and request.num_output_tokens
                    and computed < len(request.blocks) * block_size):
                # Most steps of most requests: decode one token into room the last block
                # still has. `draft.add`, inlined for them (this runs for every running
                # request each step).
                work.append(_new_work(ScheduledWork, (request, 1, True, computed + 1)))
                draft.budget -= 1
                draft.decode_seqs += 1
                draft.context_tokens += computed + 1
                continue
            num_tokens = min(uncomputed, draft.budget)
            fits = computed + num_tokens <= len(request.blocks) * block_size
            if not (fits or self._grow_or_preempt(request, num_tokens, draft)):
                return
            draft.add(request, num_tokens)

    def _grow_or_preempt(self, request: SimRequest, num_tokens: int, draft: _StepDraft) -> bool:
        """Give `request` blocks for `num_tokens` more tokens, preempting running requests
        until they fit. False if `request` itself had to be preempted."""
        target = request.num_computed_tokens + num_tokens
        needed = self.kv.blocks_for(target) - len(request.blocks)
        if needed <= 0:
            return True  # most decode steps: the last block still has room
        while not self.kv.can_allocate(needed):
            if self.pins.release_one(self._now_s):
                continue
            victim = self._pick_victim()
            self._preempt(victim, draft)
            if victim is request:
                return False
        request.blocks.extend(self.kv.allocate(needed))
        return True

    def _pick_victim(self) -> SimRequest:
        if self.config.policy == "priority":
            return max(self.running, key=lambda r: (r.priority, r.arrival_seq))
        return self.running[-1]

    def _preempt(self, victim: SimRequest, draft: _StepDraft) -> None:
        self.running.remove(victim)
        draft.drop(victim)
        draft.preempted = True
        self._release(victim)
        victim.num_computed_tokens = 0
        victim.num_preemptions += 1
        victim.status = RequestStatus.WAITING
        self.waiting.readmit(victim)
        self._tally.preemptions += 1

    def _admit_waiting(self, draft: _StepDraft) -> None:
        while len(self.waiting) and draft.budget > 0:
            if len(self.running) >= self.config.max_num_seqs:
                return
            if not self._try_admit(self.waiting.peek(), draft):
                return

    def _try_admit(self, request: SimRequest, draft: _StepDraft) -> bool:
        hits = self._prefix_hits(request)
        cached_tokens = len(hits) * self.config.block_size
        num_tokens = min(len(request.tokens) - cached_tokens, draft.budget)
        needed = self.kv.blocks_for(cached_tokens + num_tokens) - len(hits)
        while not self.kv.can_allocate(needed, reusing=hits):
            if not self.pins.release_one(self._now_s, spare_program=request.program_id):
                return False
        self.waiting.pop()
        self.kv.share(hits)
        if request.program_id:
            self.pins.take_over(request.program_id, hits)
        request.blocks = hits + self.kv.allocate(needed)
        self._start_running(request, cached_tokens)
        draft.add(request, num_tokens)
        return True

    def _prefix_hits(self, request: SimRequest) -> list[KVBlock]:
        if not self.config.enable_prefix_caching:
            return []
        # At least one token must be computed to produce the next token's logits.
        max_blocks = (len(request.tokens) - 1) // self.config.block_size
        return self.kv.lookup_prefix(request.block_hashes(max_blocks, self.config.block_size))

    def _start_running(self, request: SimRequest, cached_tokens: int) -> None:
        request.num_computed_tokens = cached_tokens
        request.num_remembered_blocks = cached_tokens // self.config.block_size
        if request.cached_prompt_tokens is None:
            request.cached_prompt_tokens = min(cached_tokens, request.num_prompt_tokens)
        request.status = RequestStatus.RUNNING
        self.running.append(request)
        self._tally.cached_prompt_tokens += cached_tokens
        self._tally.peak_running = max(self._tally.peak_running, len(self.running))

    def _remember_full_blocks(self, request: SimRequest) -> None:
        # Blocks become findable when the step that computed them ends, so two requests
        # admitted in the same step with the same prefix both compute it.
        if not self.config.enable_prefix_caching:
            return
        full = request.num_computed_tokens // self.config.block_size
        if full == request.num_remembered_blocks:
            return  # the common decode step: no block filled up
        hashes = request.block_hashes(full, self.config.block_size)
        for index in range(request.num_remembered_blocks, full):
            self.kv.remember(request.blocks[index], hashes[index])
        request.num_remembered_blocks = full

    def _finish(self, request: SimRequest) -> None:
        self.running.remove(request)
        if request.keep_warm_s is not None and request.program_id:
            self.pins.pin(request.program_id, request.priority,
                          self._now_s + request.keep_warm_s, request.blocks)
            request.blocks = []
            request.num_remembered_blocks = 0
        else:
            self._release(request)
        request.status = RequestStatus.FINISHED
        self._tally.finished_requests += 1

    def _release(self, request: SimRequest) -> None:
        self.kv.release(request.blocks)
        request.blocks = []
        request.num_remembered_blocks = 0
