"""Which `package.module:function` tool references may be imported, and importing them.

Importing a module runs its code, so a spec must not be able to name any module on the
path: `tool: "this:x"` would print the Zen of Python while a spec is only being
validated. A reference resolves only when the user trusts its module, by one of:
- putting it beside the spec (`ImportPolicy.beside(spec_path)`);
- naming it, or a package above it, as an allowed prefix (`--allow-import PREFIX`).
Functions registered on the registry in Python need no import at all. Anything else is
refused before any import happens.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from taskloom.errors import ToolError
from taskloom.naming import closest_name, did_you_mean
from taskloom.tools.tool import Tool, make_tool

__all__ = ["ALLOW_IMPORT_FLAG", "ImportPolicy", "ImportRefused", "ToolNotFound", "import_tool"]

# The command-line flag that widens a policy; refusals name it so the user knows the fix.
ALLOW_IMPORT_FLAG = "--allow-import"
_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


class ToolNotFound(ToolError, KeyError):
    """No tool by that name, and no importable `module:function` either."""

    def __init__(self, message: str, *, name: str = "", suggestions: Iterable[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError would show the message quoted, as if it were a key.
        return str(self.args[0])


class ImportRefused(ToolError):
    """A `module:function` reference to a module the import policy does not trust."""


@dataclass(frozen=True)
class ImportPolicy:
    """The modules that `module:function` tool references may import.

    `prefixes`: module names trusted with everything under them (`acme.tools` admits
    `acme.tools` and `acme.tools.search`, not `acme`). `folders`: directories whose own
    top-level modules and packages are trusted, such as the folder of the spec file.
    The default trusts nothing.
    """

    prefixes: tuple[str, ...] = ()
    folders: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            if not _MODULE_NAME.match(prefix):
                raise ToolError(
                    f"{ALLOW_IMPORT_FLAG} '{prefix}' is not a module name such as 'acme.tools'"
                )
        object.__setattr__(self, "folders", tuple(Path(f).resolve() for f in self.folders))

    @classmethod
    def beside(cls, spec: Path | str, prefixes: Iterable[str] = ()) -> ImportPolicy:
        """Trust the modules in the folder of `spec`, plus `prefixes`."""
        return cls(prefixes=tuple(prefixes), folders=(Path(spec).resolve().parent,))

    def allows_prefix(self, module_name: str) -> bool:
        """Whether `module_name` is one of the prefixes or inside one."""
        return any(module_name == p or module_name.startswith(f"{p}.") for p in self.prefixes)

    def folder_of(self, module_name: str) -> Path | None:
        """The trusted folder whose top-level module or package `module_name` is in, if any.

        Finding a module spec only looks at files; no code runs.
        """
        top = module_name.partition(".")[0]
        for folder in self.folders:
            if importlib.machinery.PathFinder.find_spec(top, [str(folder)]) is not None:
                return folder
        return None


def import_tool(reference: str, policy: ImportPolicy) -> Tool:
    """The tool that `package.module:function` names, imported only if `policy` trusts it."""
    module_name, _, attribute_path = reference.partition(":")
    if not module_name or not _MODULE_NAME.match(module_name):
        raise ToolNotFound(f"tool reference '{reference}' names no module", name=reference)
    if not attribute_path:
        raise ToolNotFound(f"tool reference '{reference}' names no function", name=reference)
    module = _import_trusted(module_name, reference, policy)
    target: Any = module
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            raise _no_attribute(module_name, attribute, target, reference)
        target = getattr(target, attribute)
    if isinstance(target, Tool):
        return target
    if not callable(target):
        raise ToolError(f"'{reference}' is a {type(target).__name__}, not a function or Tool")
    return make_tool(target, name=attribute_path.rpartition(".")[2], description=None)


def _no_attribute(module_name: str, attribute: str, owner: Any, reference: str) -> ToolNotFound:
    public = [n for n in dir(owner) if not n.startswith("_")]
    closest = closest_name(attribute, public)
    hint = did_you_mean(attribute, public)
    return ToolNotFound(
        f"'{module_name}' has no attribute '{attribute}' (tool '{reference}')"
        + (f"; {hint}" if hint else ""),
        name=reference,
        suggestions=[f"{module_name}:{closest}"] if closest else [],
    )


def _import_trusted(module_name: str, reference: str, policy: ImportPolicy) -> ModuleType:
    if policy.allows_prefix(module_name):
        return _import(module_name, reference)
    folder = policy.folder_of(module_name)
    if folder is not None:
        return _import_from_folder(module_name, folder, reference)
    top = module_name.partition(".")[0]
    narrower = f" (or {module_name})" if top != module_name else ""
    raise ImportRefused(
        f"tool '{reference}' would import module '{module_name}', which is not trusted: "
        f"pass {ALLOW_IMPORT_FLAG} {top}{narrower} to trust it, put the module beside "
        "the spec, or register the function in Python"
    )


def _import_from_folder(module_name: str, folder: Path, reference: str) -> ModuleType:
    top = module_name.partition(".")[0]
    # A top-level name is looked up without importing anything.
    found = sys.modules.get(top) or importlib.util.find_spec(top)
    if found is not None and not _is_inside(_origins(found), folder):
        raise ImportRefused(
            f"tool '{reference}': the module '{top}' beside the spec has the same name as "
            f"an installed module, so importing it is ambiguous; rename {folder / top}"
        )
    with _on_path(folder):
        return _import(module_name, reference)


def _origins(found: ModuleType | importlib.machinery.ModuleSpec) -> list[str]:
    """The file of a module, or the folders of a (namespace) package."""
    if isinstance(found, ModuleType):
        file = getattr(found, "__file__", None)
        return [file] if file else list(getattr(found, "__path__", []))
    return [found.origin] if found.has_location and found.origin else list(
        found.submodule_search_locations or []
    )


def _is_inside(origins: list[str], folder: Path) -> bool:
    return bool(origins) and all(Path(o).resolve().is_relative_to(folder) for o in origins)


@contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    # Only while importing, so that the module's own imports of its neighbours work.
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def _import(module_name: str, reference: str) -> ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module itself (or a parent package) missing means "not found"; a
        # missing dependency inside it is the module's own bug and should say so.
        if exc.name and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise ToolNotFound(
                f"no module '{module_name}' for tool '{reference}'", name=reference
            ) from None
        raise ToolError(f"importing '{module_name}' for tool '{reference}' failed: {exc}") from exc
    except Exception as exc:
        raise ToolError(f"importing '{module_name}' for tool '{reference}' failed: {exc}") from exc
