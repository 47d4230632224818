"""KV kept warm across a program's tool call: pinned blocks with a time-to-live.

When a request that carries a keep-warm hint finishes, its full (findable) blocks stay
referenced instead of returning to the free queue, so nothing can evict them while the
program waits on its tool. The pin ends in one of three ways:

- the program's next call is admitted and takes the blocks over (a prefix hit);
- the KV cache runs short and the engine releases pins before it preempts anything:
  pins past their time-to-live first (oldest deadline first), then live pins of the
  lowest-priority programs (the largest `priority` value, vLLM's order), the soonest to
  expire first among equals. A released pin's blocks go to the front of the free queue,
  so they are the ones evicted;
- the engine closes.

A pin past its deadline is not released on a timer: its blocks simply become the first
to go when KV is short. Until then they cost nothing, since free blocks are only
evicted when handed out, and releasing lazily keeps the engine a pure state machine
whose steps the backend may fast-forward over.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskloom.backends.sim.kv_cache import KVBlock, KVCache
from taskloom.backends.sim.stats import StatsTally


@dataclass(eq=False)
class WarmPin:
    """The blocks a finished call of `program_id` keeps until `deadline_s`."""

    program_id: str
    priority: int
    deadline_s: float
    blocks: list[KVBlock]


class WarmPins:
    """The pins of one engine, by program, and the counters they move."""

    def __init__(self, kv: KVCache, tally: StatsTally) -> None:
        self._kv = kv
        self._tally = tally
        self._by_program: dict[str, list[WarmPin]] = {}

    def __len__(self) -> int:
        return sum(len(pins) for pins in self._by_program.values())

    @property
    def pinned_blocks(self) -> int:
        return sum(len(pin.blocks) for pins in self._by_program.values() for pin in pins)

    def pin(self, program_id: str, priority: int, deadline_s: float,
            blocks: list[KVBlock]) -> None:
        """Keep `blocks` (already referenced by the finished request) for the program.
        Only blocks that a later call can find are kept; the rest are released now."""
        findable = [block for block in blocks if block.block_hash is not None]
        self._kv.release([block for block in blocks if block.block_hash is None])
        if not findable:
            return
        self._by_program.setdefault(program_id, []).append(
            WarmPin(program_id, priority, deadline_s, findable))
        self._tally.warm_pins_kept += 1

    def take_over(self, program_id: str, hits: list[KVBlock]) -> None:
        """The program's next call was admitted holding `hits`: its pins end, and the
        hit blocks they held count as warm hits."""
        pins = self._by_program.pop(program_id, None)
        if not pins:
            return
        held = {block.block_id for pin in pins for block in pin.blocks}
        warm_blocks = sum(1 for block in hits if block.block_id in held)
        self._tally.warm_hit_tokens += warm_blocks * self._kv.block_size
        for pin in pins:
            self._kv.release(pin.blocks)
            self._tally.warm_pins_taken_over += 1

    def release_one(self, now_s: float, spare_program: str | None = None) -> bool:
        """Release the pin that should go first under KV pressure (see the module doc),
        never one of `spare_program`'s; False if there is none to release."""
        candidates = [
            pin for program_id, pins in self._by_program.items()
            if program_id != spare_program for pin in pins
        ]
        if not candidates:
            return False
        victim = min(candidates, key=lambda pin: (
            pin.deadline_s > now_s,  # expired pins first
            -pin.priority if pin.deadline_s > now_s else 0,
            pin.deadline_s,
        ))
        pins = self._by_program[victim.program_id]
        pins.remove(victim)
        if not pins:
            del self._by_program[victim.program_id]
        # The pin was chosen to go: its blocks are the next evicted, not older free
        # blocks (a preempted request's, say) that the queue would hand out first.
        self._kv.release(victim.blocks, evict_first=True)
        if victim.deadline_s > now_s:
            self._tally.warm_pins_released_early += 1
        else:
            self._tally.warm_pins_expired += 1
        return True
