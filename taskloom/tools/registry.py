"""The tool registry: tools by name, plus `package.module:function` references that the
registry's `ImportPolicy` trusts, imported when first asked for.

`Tool` and `@tool` live in `taskloom.tools.tool`, docstring and signature parsing in
`docstrings` and `signature`; they are re-exported here for the modules that import
them from the registry.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from taskloom.errors import ToolError
from taskloom.naming import closest_name, did_you_mean
from taskloom.tools.builtin import (
    calculator_tool,
    http_get_tool,
    read_file_tool,
    sqlite_query_tool,
)
from taskloom.tools.import_policy import ImportPolicy, ImportRefused, ToolNotFound, import_tool
from taskloom.tools.sources.base import ToolSet, unchecked_tool
from taskloom.tools.tool import Tool, tool

__all__ = [
    "ImportPolicy",
    "ImportRefused",
    "Tool",
    "ToolNotFound",
    "ToolRegistry",
    "default_registry",
    "tool",
]


class ToolRegistry:
    """Named tools, plus `package.module:function` references the import policy trusts.

    The default policy trusts no module: a spec can call registered tools only, until
    the user trusts modules with `ImportPolicy.beside(spec)` or allowed prefixes.
    """

    def __init__(
        self,
        tools: Iterable[Tool | Callable[..., Any]] = (),
        *,
        import_policy: ImportPolicy | None = None,
    ) -> None:
        self._tools: dict[str, Tool] = {}
        self.import_policy = import_policy if import_policy is not None else ImportPolicy()
        # Failures are kept too, so asking twice never runs a module's import twice.
        self._imported: dict[str, Tool | ToolError] = {}
        # Open tool sources (MCP servers), whose tools are named SOURCE.TOOL.
        self._sources: dict[str, ToolSet] = {}
        for each in tools:
            self.register(each)

    def register(self, t: Tool | Callable[..., Any], *, replace: bool = False) -> Tool:
        """Add a tool (a plain typed function is wrapped with `@tool`); return it."""
        registered = t if isinstance(t, Tool) else tool(t)
        if ":" in registered.name:
            raise ToolError(f"tool name '{registered.name}' may not contain ':' (module refs)")
        if registered.name in self._tools and not replace:
            raise ToolError(
                f"a tool named '{registered.name}' is already registered; "
                "pass replace=True to swap it"
            )
        self._tools[registered.name] = registered
        return registered

    def get(self, name: str) -> Tool:
        """The tool called `name`, or the one a trusted `package.module:function` names."""
        if name in self._tools:
            return self._tools[name]
        if ":" in name:
            return self._get_imported(name)
        source, dot, tool_name = name.partition(".")
        if dot and source in self._sources:
            tool_set = self._sources[source]
            if tool_name in tool_set.tools:
                return tool_set.tools[tool_name]
            if not tool_set.complete:
                return unchecked_tool(name, tool_set.unreachable or "its server was not reached")
        names = self.names()
        closest = closest_name(name, names)
        hint = did_you_mean(name, names)
        known = ", ".join(names) or "none"
        raise ToolNotFound(
            f"unknown tool '{name}'; {hint or f'registered tools: {known}'}",
            name=name,
            suggestions=[closest] if closest else [],
        )

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except ToolError:
            return False
        return True

    def names(self) -> list[str]:
        """Registered tool names and the sources' SOURCE.TOOL names, sorted; imported
        `module:function` tools are not listed."""
        from_sources = [n for s in self._sources.values() for n in s.qualified_names()]
        return sorted([*self._tools, *from_sources])

    def schemas(self) -> list[dict[str, Any]]:
        """One `{"name", "description", "parameters"}` entry per listed tool, for planners."""
        return [
            {"name": t.name, "description": t.description, "parameters": t.input_schema}
            for t in (self.get(name) for name in self.names())
        ]

    def with_sources(self, tool_sets: Iterable[ToolSet]) -> ToolRegistry:
        """This registry plus the tools of `tool_sets` (a source named again replaces
        the earlier one). Registered and imported tools are shared, not copied."""
        view = copy.copy(self)
        view._sources = {**self._sources, **{each.source: each for each in tool_sets}}
        return view

    def tool_sets(self) -> list[ToolSet]:
        """The open sources this registry calls into, by name."""
        return [self._sources[name] for name in sorted(self._sources)]

    def _get_imported(self, reference: str) -> Tool:
        if reference not in self._imported:
            try:
                self._imported[reference] = import_tool(reference, self.import_policy)
            except ToolError as exc:
                self._imported[reference] = exc
        found = self._imported[reference]
        if isinstance(found, ToolError):
            raise found
        return found


def default_registry(
    *,
    root: Path | None = None,
    allowed_hosts: Sequence[str] = (),
    import_policy: ImportPolicy | None = None,
) -> ToolRegistry:
    """A registry with the built-in tools: calculator, read_file, http_get, sqlite_query.

    Files are confined to `root` (default: the current directory), HTTP to
    `allowed_hosts` (default: none, so http_get refuses every URL), and
    `module:function` references to `import_policy` (default: none are imported).
    """
    base = root if root is not None else Path.cwd()
    return ToolRegistry(
        [
            calculator_tool(),
            read_file_tool(base),
            http_get_tool(allowed_hosts),
            sqlite_query_tool(base),
        ],
        import_policy=import_policy,
    )
