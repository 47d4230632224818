"""The votes of one self-consistency query so far, as an immutable snapshot.

Stopping rules and allocation policies are pure functions of a `VoteTally`, so each can
be tested with a list of counts and no engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class VoteTally:
    """Vote counts in the order each answer was first seen, plus unreadable samples.

    The order matters only for ties: of the answers with the top count, the one seen
    first leads, so a tie is broken the same way on every replay of the same samples.
    """

    counts: tuple[tuple[str, int], ...] = ()
    unparsed: int = 0

    @classmethod
    def of(cls, answers: Iterable[str | None]) -> VoteTally:
        tally = cls()
        for answer in answers:
            tally = tally.with_answer(answer)
        return tally

    @classmethod
    def from_counts(cls, counts: Iterable[int], unparsed: int = 0) -> VoteTally:
        """A tally with answers named "a0", "a1", ... holding `counts` (for tests)."""
        return cls(tuple((f"a{i}", c) for i, c in enumerate(counts) if c > 0), unparsed)

    def with_answer(self, answer: str | None) -> VoteTally:
        if answer is None:
            return VoteTally(self.counts, self.unparsed + 1)
        counts = list(self.counts)
        for index, (seen, count) in enumerate(counts):
            if seen == answer:
                counts[index] = (seen, count + 1)
                return VoteTally(tuple(counts), self.unparsed)
        counts.append((answer, 1))
        return VoteTally(tuple(counts), self.unparsed)

    @property
    def samples(self) -> int:
        """Finished samples, readable or not."""
        return self.parsed + self.unparsed

    @property
    def parsed(self) -> int:
        return sum(count for _, count in self.counts)

    @property
    def votes(self) -> dict[str, int]:
        return dict(self.counts)

    def ranked(self) -> list[int]:
        """Counts, largest first."""
        return sorted((count for _, count in self.counts), reverse=True)

    @property
    def leader(self) -> str | None:
        """The answer with the most votes; a tie goes to the one seen first."""
        best: tuple[str, int] | None = None
        for answer, count in self.counts:
            if best is None or count > best[1]:
                best = (answer, count)
        return None if best is None else best[0]

    @property
    def is_tied(self) -> bool:
        """True when no answer has strictly more votes than every other."""
        ranked = self.ranked()
        return not ranked or (len(ranked) > 1 and ranked[0] == ranked[1])
