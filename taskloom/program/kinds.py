"""Which node kinds a spec may use: the model each `kind:` name is read into.

This is the spec side of the node-kind seam. The orchestrator's `NodeKindRegistry`
registers a kind's model here when the kind is registered, so a new kind needs no edit
to the spec language: a program's `nodes` are read by looking the `kind` up here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import SerializeAsAny, ValidationError, ValidatorFunctionWrapHandler, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

from taskloom.program.spec_model import NodeBase


class NodeModelRegistry:
    """`kind` name -> the Pydantic model of that node kind."""

    def __init__(self) -> None:
        self._models: dict[str, type[NodeBase]] = {}

    def register(self, name: str, model: type[NodeBase], *, replace: bool = False) -> None:
        if name in self._models and not replace and self._models[name] is not model:
            raise ValueError(f"node kind '{name}' is registered already")
        self._models[name] = model

    def unregister(self, name: str) -> None:
        self._models.pop(name, None)

    def model_for(self, name: str) -> type[NodeBase] | None:
        return self._models.get(name)

    def names(self) -> list[str]:
        return sorted(self._models)

    @contextmanager
    def registered(self, name: str, model: type[NodeBase]) -> Iterator[None]:
        """`model` known as `name` inside the block only (for tests)."""
        self.register(name, model)
        try:
            yield
        finally:
            self.unregister(name)


node_models = NodeModelRegistry()
"""The kinds specs may use. Filled by the wiring module, `taskloom.runtime`."""


def _read_node(value: Any, handler: ValidatorFunctionWrapHandler) -> NodeBase:
    """Read one node by its `kind`, with the error types of a tagged union, so that the
    loader's error translation locates them the same way."""
    if isinstance(value, NodeBase):
        return value
    if not isinstance(value, dict):
        raise PydanticCustomError("model_attributes_type", "Input should be a valid dictionary")
    tag = value.get("kind")
    if tag is None:
        raise PydanticCustomError(
            "union_tag_not_found", "Unable to extract tag using discriminator 'kind'"
        )
    model = node_models.model_for(tag) if isinstance(tag, str) else None
    if model is None:
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag '{tag}' found using 'kind' does not match any of the expected tags: "
            "{expected_tags}",
            {"tag": str(tag), "expected_tags": ", ".join(node_models.names())},
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        # Put the tag in each error's location, as Pydantic's own tagged unions do.
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(error["type"], error["msg"], error.get("ctx")),
                loc=(tag, *error["loc"]),
                input=error["input"],
            )
            for error in exc.errors()
        ]
        raise ValidationError.from_exception_data(exc.title, errors) from None


NodeSpec = Annotated[SerializeAsAny[NodeBase], WrapValidator(_read_node)]
"""A node of any registered kind, as a program's `nodes` values are typed."""
