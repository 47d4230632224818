"""Node kinds by name: the one place the compiler and the executor look a kind up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskloom.errors import TaskloomError
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.kinds.base import NodeKind
from taskloom.program.kinds import NodeModelRegistry, node_models


class UnknownNodeKind(TaskloomError, KeyError):
    """A node kind no module registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown node kind"


class NodeKindRegistry:
    """Kinds by name. Registering a kind also teaches the spec language its model, so
    specs may use it at once."""

    def __init__(self, models: NodeModelRegistry) -> None:
        self._kinds: dict[str, NodeKind[Any]] = {}
        self._models = models

    def register(self, kind: NodeKind[Any], *, replace: bool = False) -> None:
        if kind.name in self._kinds and not replace:
            raise ValueError(f"node kind '{kind.name}' is registered already")
        self._models.register(kind.name, kind.model, replace=replace)
        self._kinds[kind.name] = kind

    def unregister(self, name: str) -> None:
        self._kinds.pop(name, None)
        self._models.unregister(name)

    def get(self, name: str) -> NodeKind[Any]:
        kind = self._kinds.get(name)
        if kind is None:
            raise UnknownNodeKind(unknown_name_message("node kind", name, self._kinds))
        return kind

    def names(self) -> list[str]:
        return sorted(self._kinds)

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    @contextmanager
    def registered(self, kind: NodeKind[Any]) -> Iterator[NodeKind[Any]]:
        """`kind` usable inside the block only: how a test adds a kind."""
        self.register(kind)
        try:
            yield kind
        finally:
            self.unregister(kind.name)


node_kinds = NodeKindRegistry(node_models)
"""The kinds every run may use; `taskloom.runtime` registers the built-in ones."""
