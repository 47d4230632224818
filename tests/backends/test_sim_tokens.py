"""The stand-in tokenizer and the KV block pool."""

from __future__ import annotations

from taskloom.backends.base import GenerateRequest, Message
from taskloom.backends.sim import FILLER_TEXT, approx_tokens, request_tokens
from taskloom.backends.sim.kv_cache import KVCache
from taskloom.backends.sim.tokens import FILLER_TOKEN_ID, count_tokens


def test_words_split_into_four_character_pieces() -> None:
    assert len(approx_tokens("a bb ccc dddd")) == 4
    assert len(approx_tokens("abcdefghi")) == 3  # abcd efgh i
    assert approx_tokens("   ") == []


def test_token_ids_are_stable_and_prefix_preserving() -> None:
    # Fixed values: ids come from blake2b, not Python's per-process salted hash.
    assert approx_tokens("hello") == [2716693656, 3484286395]  # "hell" "o"
    assert approx_tokens("hell") != approx_tokens("help")
    assert approx_tokens("one two three")[:2] == approx_tokens("one two")
    assert approx_tokens(FILLER_TEXT * 3) == [FILLER_TOKEN_ID] * 3


def test_a_prompt_request_is_never_empty() -> None:
    assert len(request_tokens(GenerateRequest("x", prompt=""))) == 1


def test_chat_tokens_end_with_the_header_a_quoted_answer_follows() -> None:
    system, user = Message("system", "be brief"), Message("user", "hi")
    first = request_tokens(GenerateRequest("1", messages=(system, user)))
    answer = Message("assistant", FILLER_TEXT * 2)
    follow = request_tokens(GenerateRequest("2", messages=(system, user, answer, user)))
    assert follow[: len(first) + 2] == [*first, FILLER_TOKEN_ID, FILLER_TOKEN_ID]


def test_kv_blocks_are_reference_counted_and_reused_from_the_cache() -> None:
    cache = KVCache(num_blocks=3, block_size=2)
    blocks = cache.allocate(2)
    cache.remember(blocks[0], b"h0")
    assert cache.lookup_prefix([b"h0", b"h1"]) == [blocks[0]]
    cache.share([blocks[0]])  # a second request holds the cached block too
    cache.release(blocks)
    assert cache.num_free_blocks == 2  # the shared block is still held
    cache.release([blocks[0]])
    assert cache.num_free_blocks == 3
    assert cache.lookup_prefix([b"h0"]) == [blocks[0]]  # free, but still cached
    assert not cache.can_allocate(3, reusing=[blocks[0]])
    cache.allocate(3)
    assert cache.lookup_prefix([b"h0"]) == []  # evicted when handed out again


def test_pieces_are_each_words_four_character_cuts_and_counting_agrees() -> None:
    text = "naïve\tcafé  résumé\nsupercalifragilistic a\u00a0bb  ccc,dddd eeeee\u3000x"
    by_words = [
        word[i : i + 4] for word in text.split() for i in range(0, len(word), 4)
    ]
    assert approx_tokens(text) == [approx_tokens(piece)[0] for piece in by_words]
    assert count_tokens(text) == len(by_words) == len(approx_tokens(text))


def test_a_repeated_chat_history_gives_the_same_tokens_as_a_fresh_one() -> None:
    history = (Message("system", "be brief " * 50), Message("user", "and precise " * 30))
    first = request_tokens(GenerateRequest("1", messages=history))
    again = request_tokens(GenerateRequest("2", messages=history))  # from the cache
    assert again == first and again is not first
    again.append(0)  # the caller's list is its own
    assert request_tokens(GenerateRequest("3", messages=history)) == first
