"""The text a run's program can be loaded from again, so that `resume` rebuilds exactly
the program that ran. The text is kept only when loading it gives back an equal program."""

from __future__ import annotations

import json
from pathlib import Path

from taskloom.errors import TaskloomError
from taskloom.program.load import loads
from taskloom.program.models import Program


def reloadable_text(program: Program) -> tuple[str | None, str | None]:
    """(spec text, spec file) that load back into `program`; (None, None) if neither the
    file it came from nor its own JSON form does (then the run cannot be resumed)."""
    source = getattr(program, "_source", None)
    file = getattr(source, "file", None)
    if isinstance(file, str) and Path(file).is_file():
        text = Path(file).read_text(encoding="utf-8")
        if _loads_back(text, file, program):
            return text, file
    text = json.dumps(program.model_dump(mode="json", by_alias=True, exclude_unset=True))
    if _loads_back(text, "<python>", program):
        return text, None
    return None, file if isinstance(file, str) else None


def _loads_back(text: str, filename: str, program: Program) -> bool:
    try:
        return loads(text, filename=filename) == program
    except (TaskloomError, ValueError):
        return False
