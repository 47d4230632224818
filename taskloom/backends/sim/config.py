"""The knobs of the simulated engine, named as vLLM names them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

QueuePolicy = Literal["fcfs", "priority"]


@dataclass(frozen=True)
class SimEngineConfig:
    """Limits of one simulated engine.

    - `max_num_seqs`: most requests running (holding KV blocks) at once.
    - `num_kv_blocks` x `block_size`: the KV cache, in tokens.
    - `max_num_batched_tokens`: token budget of one step; longer prompts are prefilled in
      chunks over several steps.
    - `policy`: order of the waiting queue. "priority" orders by (priority, arrival), a
      lower priority value first, as vLLM's `scheduling_policy="priority"`.
    """

    max_num_seqs: int = 256
    num_kv_blocks: int = 8192
    block_size: int = 16
    max_num_batched_tokens: int = 8192
    enable_prefix_caching: bool = True
    policy: QueuePolicy = "fcfs"

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "num_kv_blocks", "block_size", "max_num_batched_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"SimEngineConfig.{name} must be at least 1")
        if self.policy not in ("fcfs", "priority"):
            raise ValueError(f"SimEngineConfig.policy is 'fcfs' or 'priority', not {self.policy!r}")

    @property
    def kv_capacity_tokens(self) -> int:
        return self.num_kv_blocks * self.block_size
