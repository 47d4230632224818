"""Node kinds: the interface (`base`), the registry, and the built-in kinds that need
nothing but the orchestrator (`llm`, `tool`, `map`). The `plan` kind lives with the
planners; `taskloom.runtime` registers them all."""

from taskloom.orchestrator.kinds.base import (
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    TemplateSite,
    node_sites,
    value_sites,
)
from taskloom.orchestrator.kinds.registry import NodeKindRegistry, UnknownNodeKind, node_kinds

__all__ = [
    "KindLookup",
    "NodeChecks",
    "NodeEnvironment",
    "NodeKind",
    "NodeKindRegistry",
    "TemplateSite",
    "UnknownNodeKind",
    "node_kinds",
    "node_sites",
    "value_sites",
]
