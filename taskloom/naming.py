"""Names the user typed that match nothing: the closest known name, said one way.

Every "unknown X" message in taskloom (node fields, node kinds, tools, policies,
backends, inputs) goes through here, so they all read alike and suggest alike.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# difflib's default; below it the suggestions are more noise than help.
_CUTOFF = 0.6


def closest_name(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate closest to `word`, or None when nothing is close."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=_CUTOFF)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A hint naming the closest candidate, or None."""
    match = closest_name(word, candidates)
    return None if match is None else f"did you mean '{match}'?"


def unknown_name_message(what: str, word: str, candidates: Iterable[str]) -> str:
    """`unknown <what> 'word' (did you mean 'x'?); choose from a, b, c`."""
    known = sorted(candidates)
    hint = did_you_mean(word, known)
    suggestion = f" ({hint})" if hint else ""
    choices = f"; choose from {', '.join(known)}" if known else ""
    return f"unknown {what} '{word}'{suggestion}{choices}"
