"""YAML specs to Programs, with every error pointing at a file, line and column.

Three steps, one module each: `yaml_parse` turns the text into plain data and a
`SourceMap` of where each value sits; Pydantic validates the data; and
`error_translation` turns each validation error's `loc` back into a located SpecError.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from taskloom.errors import SpecError
from taskloom.program.error_translation import bundle, not_a_mapping, translate
from taskloom.program.models import Program
from taskloom.program.source_map import SourceMap, SpecPath
from taskloom.program.yaml_parse import parse_yaml

__all__ = ["SourceMap", "SpecPath", "load", "loads"]


def load(path: str | Path) -> Program:
    """Load a program from a YAML file; raises SpecError or SpecErrors."""
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file not found: {spec_path}",
            hint="check the path; it is relative to the current directory",
        ) from None
    except IsADirectoryError:
        raise SpecError(
            f"spec path is a directory, not a file: {spec_path}",
            hint="point at the .yaml file inside it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {spec_path}: {exc}") from None
    return loads(text, filename=str(spec_path))


def loads(text: str, filename: str = "<string>") -> Program:
    """Load a program from YAML text; `filename` is only used in error locations."""
    parsed = parse_yaml(text, filename)
    if not isinstance(parsed.data, dict):
        raise not_a_mapping(parsed.data, parsed.source)
    problems = list(parsed.duplicates)
    try:
        program = Program.model_validate(parsed.data)
    except ValidationError as exc:
        problems.extend(translate(error, parsed.data, parsed.source) for error in exc.errors())
    if problems:
        raise bundle(problems)
    program._source = parsed.source
    return program
