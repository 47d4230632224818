from __future__ import annotations

import struct

from taskloom.backends.sim.kv_cache import KVCache, pack_tokens


def test_packed_tokens_are_four_little_endian_bytes_each() -> None:
    # The block hashes (and so every prefix hit) depend on these exact bytes.
    for tokens in ([], [0], [1, 2, 3], [2**32 - 1, 7, 123_456_789]):
        assert pack_tokens(tokens) == struct.pack(f"<{len(tokens)}I", *tokens)
    assert pack_tokens([1, 256]) == b"\x01\x00\x00\x00\x00\x01\x00\x00"


def test_only_idle_cached_blocks_count_against_an_allocation() -> None:
    kv = KVCache(num_blocks=4, block_size=2)
    held = kv.allocate(1)  # taken: ref_count 1, not in the free pool
    kv.remember(held[0], b"h0")
    idle = kv.allocate(1)
    kv.remember(idle[0], b"h1")
    kv.release(idle)  # freed but still cached: taking it uses up a free block
    assert kv.num_free_blocks == 3
    assert kv.can_allocate(2, reusing=[held[0], idle[0]])
    assert not kv.can_allocate(3, reusing=[held[0], idle[0]])
    assert kv.can_allocate(3, reusing=[held[0]])
