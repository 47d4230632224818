"""Tool docstrings: the summary paragraph and each argument's description.

Arguments are read from a Google (`Args:`), numpy (`Parameters` over dashes) or Sphinx
(`:param x:`) section, whichever the docstring has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_GOOGLE_ARGS_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$"
)
_GOOGLE_SECTION_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns?|Yields?|"
    r"Raises|Examples?|Notes?|Attributes|Warnings?|See Also|Todo):\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$")
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def summary(docstring: str) -> str:
    """The first paragraph, joined into one line; empty if the docstring opens with a section."""
    lines = docstring.splitlines()
    paragraph: list[str] = []
    for index, line in enumerate(lines):
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if not line.strip() or _starts_section(line, next_line):
            break
        paragraph.append(line.strip())
    return " ".join(paragraph)


def _starts_section(line: str, next_line: str) -> bool:
    return bool(
        _GOOGLE_SECTION_HEADER.match(line.strip())
        or _UNDERLINE.match(next_line)
        or line.lstrip().startswith(":param")
    )


def param_docs(docstring: str) -> dict[str, str]:
    """Argument descriptions from a Google, numpy or Sphinx style docstring."""
    lines = docstring.splitlines()
    return _google_params(lines) or _numpy_params(lines) or _sphinx_params(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_params(lines: Sequence[str]) -> dict[str, str]:
    starts = [i for i, line in enumerate(lines) if _GOOGLE_ARGS_HEADER.match(line.strip())]
    docs: dict[str, str] = {}
    for start in starts:
        header_indent = _indent(lines[start])
        block = _indented_block(lines[start + 1 :], deeper_than=header_indent)
        docs.update(_entries(block, _GOOGLE_ENTRY))
    return docs


def _numpy_params(lines: Sequence[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for i in range(len(lines) - 1):
        is_header = lines[i].strip() in ("Parameters", "Other Parameters")
        if is_header and _UNDERLINE.match(lines[i + 1]):
            block = _numpy_block(lines[i + 2 :])
            docs.update(_entries(block, _NUMPY_ENTRY))
    return docs


def _sphinx_params(lines: Sequence[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        match = _SPHINX_PARAM.match(line.strip())
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and line.strip() and _indent(line) > 0:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
        else:
            current = None
    return docs


def _indented_block(lines: Sequence[str], *, deeper_than: int) -> list[str]:
    """Lines up to the first non-blank one not indented deeper than the section header."""
    block: list[str] = []
    for line in lines:
        if line.strip() and _indent(line) <= deeper_than:
            break
        block.append(line)
    return block


def _numpy_block(lines: Sequence[str]) -> list[str]:
    """Lines up to the next numpy section (a title line over a row of dashes)."""
    block: list[str] = []
    for index, line in enumerate(lines):
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(next_line):
            break
        block.append(line)
    return block


def _entries(block: Sequence[str], entry: re.Pattern[str]) -> dict[str, str]:
    """Split a block into `name: description` entries at the block's smallest indent."""
    indents = [_indent(line) for line in block if line.strip()]
    if not indents:
        return {}
    entry_indent = min(indents)
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in block:
        text = line.strip()
        if not text:
            continue
        match = entry.match(text) if _indent(line) == entry_indent else None
        if match:
            names = [n.strip().lstrip("*") for n in match.group(1).split(",")]
            first_text = match.group(2).strip() if match.lastindex == 2 else ""
            docs.update(dict.fromkeys(names, first_text))
        else:
            for name in names:
                docs[name] = f"{docs[name]} {text}".strip()
    return docs
