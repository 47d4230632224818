"""Many decode-only steps of one running set, computed at once.

Between two events (an arrival, an abort, a finish, a prompt chunk) a busy engine often
runs step after step in which every running request decodes exactly one token and
nothing else changes. Such a run is predictable: step i of it schedules the same
sequences with one more token of context each, so its time is known in advance, and its
effect on the KV cache is a known list of block allocations and of full blocks becoming
findable. This module finds how long such a run is guaranteed to last and applies its
first steps in one go, with the same result, block for block and counter for counter, as
scheduling and completing them one by one. The engine owns the state; these functions
only read and update it.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskloom.backends.sim.config import SimEngineConfig
from taskloom.backends.sim.cost import StepBatch, StepCostModel
from taskloom.backends.sim.kv_cache import KVCache
from taskloom.backends.sim.request import SimRequest
from taskloom.backends.sim.stats import StatsTally
from taskloom.backends.sim.tokens import FILLER_TOKEN_ID

# Block events inside a run, in the order step-by-step execution meets them: step i
# first allocates (when it is scheduled), then remembers full blocks (when it completes),
# each phase in running order.
_ALLOCATE = 0
_REMEMBER = 1


def decode_horizon(
    running: Sequence[SimRequest],
    num_waiting: int,
    config: SimEngineConfig,
    kv: KVCache,
    limit: int,
) -> int:
    """How many of the next steps are certain to be decode-only steps of `running`.

    Guaranteed means: no step in the run admits a waiting request, preempts one for KV
    blocks, or finishes one before the last step (the last may finish some). At most
    `limit`; 0 when the next step is not decode-only.
    """
    count = len(running)
    if count == 0 or limit < 1 or count > config.max_num_batched_tokens:
        return 0
    if num_waiting and count < config.max_num_seqs and count < config.max_num_batched_tokens:
        # A waiting request may be admitted at the next step. (Whether the KV cache would
        # refuse it depends on prefix hits that a decode step can change, so no promise.)
        return 0
    horizon = limit
    for request in running:
        if not request.is_decoding:
            return 0  # a prompt (or its recompute after a preemption) is being prefilled
        left = request.target_output_tokens - request.num_output_tokens
        if left < horizon:
            horizon = left
    return _steps_the_kv_cache_allows(running, kv, horizon)


def _steps_the_kv_cache_allows(running: Sequence[SimRequest], kv: KVCache, steps: int) -> int:
    """The largest number of steps, at most `steps`, whose new blocks all fit in the free
    pool: then no step of the run preempts (blocks only return when a request ends)."""
    free = kv.num_free_blocks
    if _new_blocks(running, kv.block_size, steps) <= free:
        return steps
    low, high = 0, steps  # fits(low), not fits(high)
    while high - low > 1:
        middle = (low + high) // 2
        if _new_blocks(running, kv.block_size, middle) <= free:
            low = middle
        else:
            high = middle
    return low


def _new_blocks(running: Sequence[SimRequest], block_size: int, steps: int) -> int:
    total = 0
    for request in running:
        needed = -(-(request.num_computed_tokens + steps) // block_size) - len(request.blocks)
        if needed > 0:
            total += needed
    return total


def decode_step_seconds(
    running: Sequence[SimRequest], cost: StepCostModel, steps: int
) -> list[float]:
    """The modelled time of each step of a decode-only run of `running`."""
    count = len(running)
    # Step i (from 1) feeds each sequence's last token: its context is computed + i.
    context = sum(request.num_computed_tokens for request in running)
    return [
        cost.step_time(StepBatch(0, count, context + count * step))
        for step in range(1, steps + 1)
    ]


def complete_decode_steps(
    running: Sequence[SimRequest],
    seconds: Sequence[float],
    config: SimEngineConfig,
    kv: KVCache,
    tally: StatsTally,
) -> None:
    """Apply the first `len(seconds)` steps of a run that `decode_horizon` promised.

    None of them finishes a request, so the running list stays as it is."""
    steps = len(seconds)
    if steps == 0:
        return
    if any(r.target_output_tokens - r.num_output_tokens <= steps for r in running):
        raise RuntimeError("a decode run may finish requests only in its last step")
    events = _block_events(running, steps, config)
    hashes: list[list[bytes]] = []
    for request in running:
        request.tokens.extend([FILLER_TOKEN_ID] * steps)
        request.num_output_tokens += steps
        request.num_computed_tokens += steps
        full = request.num_computed_tokens // config.block_size
        remembering = config.enable_prefix_caching and full > request.num_remembered_blocks
        hashes.append(request.block_hashes(full, config.block_size) if remembering else [])
    for _step, phase, index, block in events:
        request = running[index]
        if phase == _ALLOCATE:
            request.blocks.extend(kv.allocate(1))
        else:
            kv.remember(request.blocks[block], hashes[index][block])
    if config.enable_prefix_caching:
        for request in running:
            request.num_remembered_blocks = request.num_computed_tokens // config.block_size
    tally.steps += steps
    for step_seconds in seconds:  # one addition per step, as completing them one by one
        tally.busy_s += step_seconds
    tally.generated_tokens += steps * len(running)


def _block_events(
    running: Sequence[SimRequest], steps: int, config: SimEngineConfig
) -> list[tuple[int, int, int, int]]:
    """(step, phase, running index, block index) of every allocation and every block
    becoming findable in the first `steps` steps, in step-by-step order."""
    size = config.block_size
    events: list[tuple[int, int, int, int]] = []
    for index, request in enumerate(running):
        computed = request.num_computed_tokens
        # Step i needs blocks for computed + i tokens: one more block each time that
        # count passes a block boundary.
        first = max(len(request.blocks) * size - computed + 1, 1)
        events.extend((step, _ALLOCATE, index, 0) for step in range(first, steps + 1, size))
        if config.enable_prefix_caching:
            # Block b is full once computed + i reaches (b + 1) * size.
            for block in range(request.num_remembered_blocks, (computed + steps) // size):
                events.append((max((block + 1) * size - computed, 1), _REMEMBER, index, block))
    events.sort()
    return events
