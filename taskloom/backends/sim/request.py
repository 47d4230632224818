"""The engine's view of one request: its tokens and how far they are computed."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from taskloom.backends.sim.kv_cache import (
    ROOT_HASH,
    BlockHash,
    KVBlock,
    hash_packed_block,
    pack_tokens,
)
from taskloom.backends.sim.tokens import FILLER_TOKEN_ID


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED = "finished"
    ABORTED = "aborted"


@dataclass(eq=False)
class SimRequest:
    """Mutable state of one request inside the engine (identity equality).

    `tokens` is the prompt followed by everything generated so far. After a preemption
    `num_computed_tokens` drops to 0, so the generated tokens are recomputed as if they
    were prompt. `keep_warm_s`, with a `program_id`, asks the engine to keep the
    request's KV for that long after it finishes (see `warm_pins`).
    """

    request_id: int
    arrival_seq: int
    priority: int
    tokens: list[int]
    target_output_tokens: int
    num_prompt_tokens: int = 0
    num_output_tokens: int = 0
    num_computed_tokens: int = 0
    blocks: list[KVBlock] = field(default_factory=list)
    num_remembered_blocks: int = 0
    cached_prompt_tokens: int | None = None
    num_preemptions: int = 0
    status: RequestStatus = RequestStatus.WAITING
    program_id: str = ""
    keep_warm_s: float | None = None
    _block_hashes: list[BlockHash] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.num_prompt_tokens = len(self.tokens)

    @property
    def num_uncomputed_tokens(self) -> int:
        return len(self.tokens) - self.num_computed_tokens

    @property
    def is_decoding(self) -> bool:
        """Whether the next step feeds back just the last sampled token."""
        return self.num_output_tokens > 0 and self.num_uncomputed_tokens == 1

    @property
    def is_complete(self) -> bool:
        return self.num_output_tokens >= self.target_output_tokens

    def append_output_token(self) -> None:
        self.tokens.append(FILLER_TOKEN_ID)
        self.num_output_tokens += 1

    def block_hashes(self, count: int, block_size: int) -> list[BlockHash]:
        """Chain hashes of the first `count` full blocks (extended lazily, since tokens
        only grow at the end). The list is the request's own: do not change it."""
        hashes = self._block_hashes
        if len(hashes) < count:
            # Pack the missing blocks' tokens in one go; each block is then a slice.
            packed = pack_tokens(self.tokens[len(hashes) * block_size : count * block_size])
            width = 4 * block_size
            parent = hashes[-1] if hashes else ROOT_HASH
            for start in range(0, len(packed), width):
                parent = hash_packed_block(parent, packed[start : start + width])
                hashes.append(parent)
        return hashes if len(hashes) == count else hashes[:count]
