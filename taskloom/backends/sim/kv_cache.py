"""A paged KV cache with automatic prefix caching, as a block pool.

Blocks hold `block_size` tokens. A full block that has been computed is remembered under
a chain hash of every token up to its end, so a later request whose token sequence starts
the same way can take the block instead of recomputing it. Freed blocks keep their hash
and wait in a least-recently-freed queue; a block is forgotten only when it is handed out
again. That is vLLM's design, reduced to what the simulator needs to count.
"""

from __future__ import annotations

import array
import functools
import hashlib
import struct
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

BlockHash = bytes
ROOT_HASH: BlockHash = b""


def hash_block(parent: BlockHash, tokens: Sequence[int]) -> BlockHash:
    """The identity of a full block: its tokens and, through `parent`, all before them."""
    return hash_packed_block(parent, pack_tokens(tokens))


def pack_tokens(tokens: Sequence[int]) -> bytes:
    """Token ids as the bytes `hash_packed_block` hashes (4 bytes each, little-endian)."""
    if _NATIVE_IS_PACKED:
        return array.array("I", tokens).tobytes()  # the same bytes, faster than struct
    return struct.pack(f"<{len(tokens)}I", *tokens)


# Whether a native array of C unsigned ints holds exactly struct's "<I" bytes.
_NATIVE_IS_PACKED = sys.byteorder == "little" and array.array("I").itemsize == 4


# Agent programs resend their history with every call, so most blocks hashed are blocks
# hashed before: remembering recent results saves most of the hashing.
@functools.lru_cache(maxsize=1 << 18)
def hash_packed_block(parent: BlockHash, packed_tokens: bytes) -> BlockHash:
    """`hash_block` of tokens already packed by `pack_tokens`."""
    return hashlib.blake2b(parent + packed_tokens, digest_size=16).digest()


@dataclass(eq=False)
class KVBlock:
    block_id: int
    ref_count: int = 0
    block_hash: BlockHash | None = None


class KVCache:
    """A fixed pool of blocks. Requests hold lists of blocks; shared prefix blocks are
    reference counted."""

    def __init__(self, num_blocks: int, block_size: int) -> None:
        self.block_size = block_size
        self.num_blocks = num_blocks
        blocks = [KVBlock(block_id) for block_id in range(num_blocks)]
        # Free blocks, oldest-freed first: allocation evicts from the front.
        self._free: OrderedDict[int, KVBlock] = OrderedDict((b.block_id, b) for b in blocks)
        self._cached: dict[BlockHash, KVBlock] = {}

    @property
    def num_free_blocks(self) -> int:
        return len(self._free)

    def blocks_for(self, num_tokens: int) -> int:
        return -(-num_tokens // self.block_size)

    def lookup_prefix(self, block_hashes: Sequence[BlockHash]) -> list[KVBlock]:
        """The cached blocks matching the longest run of `block_hashes` from the start."""
        hits: list[KVBlock] = []
        for block_hash in block_hashes:
            block = self._cached.get(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits

    def can_allocate(self, count: int, reusing: Sequence[KVBlock] = ()) -> bool:
        """Whether `count` new blocks fit after taking the cached blocks in `reusing`
        (an idle cached block leaves the free queue when taken)."""
        idle_hits = [block.ref_count for block in reusing].count(0)
        return count <= len(self._free) - idle_hits

    def share(self, blocks: Sequence[KVBlock]) -> None:
        for block in blocks:
            if block.ref_count == 0:
                del self._free[block.block_id]
            block.ref_count += 1

    def allocate(self, count: int) -> list[KVBlock]:
        if count > len(self._free):
            raise RuntimeError(f"KV cache has {len(self._free)} free blocks, asked for {count}")
        return [self._take_free() for _ in range(count)]

    def release(self, blocks: Sequence[KVBlock], evict_first: bool = False) -> None:
        # Tail blocks are freed first so they are evicted first: a request's early
        # blocks are the ones other requests are likely to share.
        # `evict_first` puts them at the front of the queue instead, the tail block
        # foremost (so each block goes in front of those before it).
        for block in blocks if evict_first else reversed(blocks):
            block.ref_count -= 1
            if block.ref_count == 0:
                self._free[block.block_id] = block
                if evict_first:
                    self._free.move_to_end(block.block_id, last=False)

    def remember(self, block: KVBlock, block_hash: BlockHash) -> None:
        """Make a computed full block findable. A twin computed earlier wins."""
        if block.block_hash is None and block_hash not in self._cached:
            block.block_hash = block_hash
            self._cached[block_hash] = block

    def _take_free(self) -> KVBlock:
        _, block = self._free.popitem(last=False)
        if block.block_hash is not None:
            del self._cached[block.block_hash]
            block.block_hash = None
        block.ref_count = 1
        return block
