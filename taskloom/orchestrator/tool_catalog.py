"""What the compiler and the tool node kind need from a tool registry.

Protocols, so that the orchestrator does not depend on how tools are registered.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Protocol

from taskloom.naming import did_you_mean


class ToolLike(Protocol):
    """What the compiler needs to know about one tool. (Read-only properties, so that
    frozen dataclasses and computed schemas both satisfy it.)"""

    @property
    def name(self) -> str: ...

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (`properties`, `required`)."""
        ...

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        """Problems with the arguments known before the run (templated ones by name only)."""
        ...


class ToolCatalog(Protocol):
    """The tools a program may call, looked up by name (or `module:function`)."""

    def __contains__(self, name: object) -> bool: ...

    def names(self) -> list[str]: ...

    def get(self, name: str) -> ToolLike: ...


def tool_signature_hint(tool: ToolLike) -> str:
    """`tool 'x' takes: a, b?` (a `?` marks an optional argument)."""
    properties = tool.input_schema.get("properties") or {}
    required = set(tool.input_schema.get("required") or [])
    if not properties:
        return f"tool '{tool.name}' takes no arguments"
    listed = [f"{name}{'' if name in required else '?'}" for name in properties]
    return f"tool '{tool.name}' takes: {', '.join(listed)}"


def unknown_tool_hint(name: str, catalog: ToolCatalog) -> str:
    """The closest tool name; for a `module:function` reference, the catalog's own reason
    it has no such tool (an import the policy refused, a missing module); else every
    name the catalog has."""
    names = catalog.names()
    if (close := did_you_mean(name, names)) is not None:
        return close
    if ":" in name:
        try:
            catalog.get(name)
        except Exception as exc:  # whatever a catalog raises, its message is the reason
            return str(exc)
    return f"known tools: {', '.join(sorted(names)) or '(none)'}"
