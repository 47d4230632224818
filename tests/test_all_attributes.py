"""Every `__all__` in taskloom says exactly what the module offers.

For each module that declares `__all__` (found by reading the source, so that a module
added later is checked too): every listed name exists, is listed once, comes from
taskloom, and the list is sorted the way ruff sorts it. A package's `__init__` exists to
re-export, so there the list must match what it imports, both ways: a public name
imported but not listed is an export forgotten, and a listed name not imported there is
reachable only by accident (say, as a submodule some other import happened to load).
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

import taskloom

PACKAGE_ROOT = Path(taskloom.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _declares_all(tree: ast.Module) -> bool:
    for statement in tree.body:
        targets = (
            statement.targets if isinstance(statement, ast.Assign)
            else [statement.target] if isinstance(statement, ast.AnnAssign | ast.AugAssign)
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def _sources() -> dict[str, Path]:
    return {
        _module_name(path): path
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
        if _declares_all(ast.parse(path.read_text(), filename=str(path)))
    }


SOURCES = _sources()


def _all_of(module_name: str) -> list[str]:
    exported = importlib.import_module(module_name).__dict__.get("__all__")
    assert isinstance(exported, list | tuple), f"{module_name}.__all__ is not a list"
    assert all(isinstance(name, str) for name in exported)
    return list(exported)


def _ruff_order(name: str) -> tuple[int, str]:
    """ruff's "isort-style" order for `__all__` (RUF022): CONSTANTS, then Classes, then
    everything else, each alphabetical."""
    if name.isupper():
        return 0, name
    return (1, name) if name[:1].isupper() else (2, name)


def _top_level_names(path: Path) -> tuple[set[str], set[str]]:
    """The public names a module binds at its top level: (imported with `from ...
    import`, defined by `def`, `class` or assignment)."""
    imported: set[str] = set()
    defined: set[str] = set()
    for statement in ast.parse(path.read_text(), filename=str(path)).body:
        if isinstance(statement, ast.ImportFrom) and statement.module != "__future__":
            imported.update(alias.asname or alias.name for alias in statement.names)
        elif isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defined.add(statement.name)
        elif isinstance(statement, ast.Assign | ast.AnnAssign):
            targets = statement.targets if isinstance(statement, ast.Assign) else [
                statement.target
            ]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    return ({n for n in imported if not n.startswith("_")},
            {n for n in defined if not n.startswith("_")})


def _only_reexports(path: Path) -> bool:
    """Whether a module holds nothing but its docstring, imports and `__all__`."""
    body = ast.parse(path.read_text(), filename=str(path)).body
    return all(
        isinstance(statement, ast.Import | ast.ImportFrom)
        or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        or _declares_all(ast.Module(body=[statement], type_ignores=[]))
        for statement in body
    )


def test_the_top_level_package_is_among_the_modules_checked() -> None:
    assert "taskloom" in SOURCES
    assert len(SOURCES) > 1


@pytest.mark.parametrize("module_name", sorted(SOURCES))
def test_every_listed_name_exists_and_is_listed_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = _all_of(module_name)
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ lists names it does not have: {missing}"
    duplicates = sorted({name for name in exported if exported.count(name) > 1})
    assert not duplicates, f"{module_name}.__all__ lists these twice: {duplicates}"


@pytest.mark.parametrize("module_name", sorted(SOURCES))
def test_all_is_sorted(module_name: str) -> None:
    exported = _all_of(module_name)
    assert exported == sorted(exported, key=_ruff_order)


@pytest.mark.parametrize("module_name", sorted(SOURCES))
def test_every_listed_class_and_function_comes_from_taskloom(module_name: str) -> None:
    # Type aliases and constants have no home module to check; classes and functions do.
    module = importlib.import_module(module_name)
    objects = {name: getattr(module, name) for name in _all_of(module_name)}
    foreign = {
        name: obj.__module__
        for name, obj in objects.items()
        if (inspect.isclass(obj) or inspect.isroutine(obj))
        and obj.__module__.split(".")[0] != "taskloom"
    }
    assert not foreign, f"{module_name}.__all__ re-exports what taskloom does not define"


PACKAGES = sorted(name for name, path in SOURCES.items() if path.name == "__init__.py")


@pytest.mark.parametrize("module_name", PACKAGES)
def test_a_package_lists_only_names_it_binds_itself(module_name: str) -> None:
    imported, defined = _top_level_names(SOURCES[module_name])
    unbound = set(_all_of(module_name)) - imported - defined
    assert not unbound, f"{module_name} lists but neither imports nor defines these"


@pytest.mark.parametrize(
    "module_name", [name for name in PACKAGES if _only_reexports(SOURCES[name])]
)
def test_a_package_that_only_reexports_lists_everything_it_imports(module_name: str) -> None:
    imported, _ = _top_level_names(SOURCES[module_name])
    forgotten = imported - set(_all_of(module_name))
    assert not forgotten, f"{module_name} imports but does not list these"


def test_the_top_level_package_only_reexports() -> None:
    assert _only_reexports(SOURCES["taskloom"])


def test_the_package_exports_no_submodule() -> None:
    assert not [
        name for name in taskloom.__all__ if isinstance(getattr(taskloom, name), ModuleType)
    ]
