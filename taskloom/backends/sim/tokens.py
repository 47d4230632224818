"""A stand-in tokenizer: stable token ids without a model.

The simulator only needs token *counts* and token *identity*: identical prefixes must give
identical ids so that the prefix cache can find them. Real BPE tokenizers average about
four characters of English per token, so each whitespace-separated word is cut into
four-character pieces, and each piece's id is a hash of its text (stable across runs and
machines, unlike Python's salted `hash(str)`).
"""

from __future__ import annotations

import functools
import hashlib
import re

from taskloom.backends.base import GenerateRequest, Message

CHARS_PER_TOKEN = 4
FILLER_TEXT = "tok "
"""The text of every simulated output token."""

# Greedy runs of at most four non-space characters: exactly the 4-character pieces of
# each whitespace-separated word, found by the regex engine in one pass.
_PIECE = re.compile(rf"\S{{1,{CHARS_PER_TOKEN}}}")


def approx_tokens(text: str) -> list[int]:
    """Token ids of `text`: each word split into 4-character pieces, ids by hashing."""
    return list(map(_piece_id, _PIECE.findall(text)))


def count_tokens(text: str) -> int:
    """`len(approx_tokens(text))`, without computing the ids."""
    return len(_PIECE.findall(text))


def request_tokens(request: GenerateRequest) -> list[int]:
    """The prompt of `request` as token ids, never empty (an engine needs one token).

    A resumed request's `resume_text` (earlier output, `FILLER_TEXT` repeated) follows the
    prompt, so its ids match the blocks the interrupted attempt cached."""
    if request.messages is not None:
        tokens = _chat_tokens(request.messages)
    else:
        tokens = approx_tokens(request.prompt or "")
    tokens += approx_tokens(request.resume_text)
    return tokens or [_piece_id("<|begin|>")]


def _chat_tokens(messages: tuple[Message, ...]) -> list[int]:
    # A chat template puts a role header before each message and an assistant header
    # last. The last header matches the one a later call puts before this answer, so
    # a follow-up call that quotes the answer shares the whole earlier sequence.
    tokens: list[int] = []
    for message in messages:
        tokens.append(_role_header(message.role))
        tokens.extend(_message_tokens(message.content))
    tokens.append(_role_header("assistant"))
    return tokens


@functools.lru_cache(maxsize=1 << 12)
def _message_tokens(content: str) -> tuple[int, ...]:
    # Agent programs send their history again with every call: a conversation of n
    # turns would be tokenized n times over without this cache.
    return tuple(approx_tokens(content))


def _role_header(role: str) -> int:
    return _piece_id(f"<|{role}|>")


@functools.lru_cache(maxsize=1 << 16)
def _piece_id(piece: str) -> int:
    digest = hashlib.blake2b(piece.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


FILLER_TOKEN_ID = approx_tokens(FILLER_TEXT)[0]
"""The id of every simulated output token; equal to the id of "tok" in a later prompt."""
