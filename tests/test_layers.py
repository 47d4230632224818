"""The package's shape, checked: layers point one way, no import hides in a function
without saying why, and no module grows past 450 lines without a stated reason."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "taskloom"
MAX_LINES = 450
LONG_MODULE_MARK = "# Longer than 450 lines because"

# (layer, what it must not import): the arrows that would point backwards.
FORBIDDEN = [
    ("orchestrator", ("taskloom.planners",)),
    ("program", ("taskloom.runtime", "taskloom.orchestrator", "taskloom.backends")),
]


def _modules(under: Path = PACKAGE) -> list[Path]:
    return sorted(under.rglob("*.py"))


def _imported_names(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


@pytest.mark.parametrize(("layer", "forbidden"), FORBIDDEN)
def test_layers_point_one_way(layer: str, forbidden: tuple[str, ...]) -> None:
    offences = [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}"
        for path in _modules(PACKAGE / layer)
        for line, name in _imported_names(ast.parse(path.read_text()))
        if name.startswith(forbidden)
    ]
    assert offences == []


def _function_imports(tree: ast.AST) -> Iterator[int]:
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    yield node.lineno


def test_every_import_inside_a_function_says_why() -> None:
    unexplained = []
    for path in _modules():
        lines = path.read_text().splitlines()
        for lineno in _function_imports(ast.parse("\n".join(lines))):
            here, above = lines[lineno - 1], lines[lineno - 2]
            if "#" not in here and "#" not in above:
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{lineno}")
    assert unexplained == []


def test_no_module_is_long_without_a_reason() -> None:
    long = [
        f"{path.relative_to(PACKAGE.parent)} ({count} lines)"
        for path in _modules()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
        and LONG_MODULE_MARK not in path.read_text()
    ]
    assert long == []
