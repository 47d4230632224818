"""Tools: `@tool` functions, the registry that names them, and the built-ins."""

from taskloom.tools.registry import (
    ImportPolicy,
    ImportRefused,
    Tool,
    ToolNotFound,
    ToolRegistry,
    default_registry,
    tool,
)

__all__ = [
    "ImportPolicy",
    "ImportRefused",
    "Tool",
    "ToolNotFound",
    "ToolRegistry",
    "default_registry",
    "tool",
]
