"""Pulling a comparable answer out of a sample's text.

An extractor returns None for a sample it cannot read; such a sample is a vote for
nothing. Normalization makes "1,000", "1000.0" and "$1000$" the same answer, so that
votes are not split by formatting.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Protocol

from taskloom.program.models import AnswerSpec


class AnswerExtractor(Protocol):
    def __call__(self, text: str) -> str | None:
        """The raw answer in `text`, or None if there is none."""
        ...


_BOXED = "\\boxed{"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def boxed_answer(text: str) -> str | None:
    """The content of the last `\\boxed{...}`, braces inside it balanced."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth = 0
    content_start = start + len(_BOXED)
    for position in range(content_start, len(text)):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return text[content_start:position]
            depth -= 1
    return None  # cut off before the box closed


def last_number(text: str) -> str | None:
    matches = _NUMBER.findall(text)
    return matches[-1] if matches else None


@dataclass(frozen=True)
class RegexAnswer:
    """The last match of `pattern`: its `answer` group, else group 1, else all of it."""

    pattern: re.Pattern[str]

    def __call__(self, text: str) -> str | None:
        matches = list(self.pattern.finditer(text))
        if not matches:
            return None
        match = matches[-1]
        if "answer" in self.pattern.groupindex:
            return match.group("answer")
        return match.group(1) if self.pattern.groups else match.group(0)


@dataclass(frozen=True)
class JsonFieldAnswer:
    """The value at a dotted path (`result.value`, `items.0`) of the sample as JSON."""

    path: tuple[str, ...]

    def __call__(self, text: str) -> str | None:
        try:
            value: Any = json.loads(text)
        except json.JSONDecodeError:
            return None
        for key in self.path:
            value = _step(value, key)
            if value is None:
                return None
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _step(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return None


# ---------------------------------------------------------------- normalization

_LATEX_NOISE = re.compile(r"\\(?:left|right|!|,|;|:|quad|displaystyle)")
_TEXT_WRAPPER = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}")
_FRAC = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_GROUPED = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d*)?")  # 1,250,000.5
_NUMERIC = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:/-?\d+(?:\.\d*)?)?")


def normalize_answer(raw: str) -> str:
    """A canonical form: LaTeX and formatting noise removed, numbers in lowest terms.

    Numbers compare by value: "1,000", "1000.0" and "$1000$" are all "1000", "0.50"
    and "\\frac{1}{2}" are both "0.5", and "\\frac{2}{6}" is "1/3". Anything else
    compares case-insensitively, with runs of spaces collapsed.
    """
    text = _TEXT_WRAPPER.sub(r"\1", raw)
    text = _LATEX_NOISE.sub("", text)
    text = _FRAC.sub(r"\1/\2", text)
    text = text.replace("$", "").replace("\\%", "").replace("%", "")
    text = " ".join(text.split()).strip(" .;:")
    number = _as_number(text)
    if number is not None:
        return _format_number(number)
    return text.lower()


def _as_number(text: str) -> Fraction | None:
    compact = text.replace(" ", "")
    if _GROUPED.fullmatch(compact):
        compact = compact.replace(",", "")
    if not _NUMERIC.fullmatch(compact):
        return None
    try:
        if "/" in compact:
            top, bottom = compact.split("/")
            return Fraction(Decimal(top)) / Fraction(Decimal(bottom))
        return Fraction(Decimal(compact))
    except (InvalidOperation, ZeroDivisionError, ValueError):
        return None


def _format_number(number: Fraction) -> str:
    """Integers plainly, terminating decimals as decimals, other ratios as p/q."""
    if number.denominator == 1:
        return str(number.numerator)
    rest = number.denominator
    for factor in (2, 5):
        while rest % factor == 0:
            rest //= factor
    if rest == 1:
        exact = Decimal(number.numerator) / Decimal(number.denominator)
        return format(exact.normalize(), "f")
    return f"{number.numerator}/{number.denominator}"


# ---------------------------------------------------------------- from the spec


@dataclass(frozen=True)
class NormalizedAnswer:
    """An extractor whose answers are normalized; an empty answer counts as none."""

    extract: AnswerExtractor

    def __call__(self, text: str) -> str | None:
        raw = self.extract(text)
        if raw is None:
            return None
        answer = normalize_answer(raw)
        return answer or None


def extractor_from_spec(spec: AnswerSpec | None) -> AnswerExtractor:
    """The extractor a node's `answer` asks for; the last number when none is given."""
    spec = spec or AnswerSpec()
    raw = _raw_extractor(spec)
    return NormalizedAnswer(raw) if spec.normalize else _NonEmpty(raw)


@dataclass(frozen=True)
class _NonEmpty:
    extract: AnswerExtractor

    def __call__(self, text: str) -> str | None:
        raw = self.extract(text)
        return raw.strip() or None if raw is not None else None


def _raw_extractor(spec: AnswerSpec) -> AnswerExtractor:
    if spec.kind == "boxed":
        return boxed_answer
    if spec.kind == "regex":
        assert spec.pattern is not None  # AnswerSpec checks it
        return RegexAnswer(re.compile(spec.pattern))
    if spec.kind == "json_field":
        assert spec.field is not None
        return JsonFieldAnswer(tuple(spec.field.split(".")))
    return last_number
