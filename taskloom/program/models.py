"""The spec language as Pydantic models.

A program loaded from YAML and one built here in Python are the same object: `load`
only parses YAML into these models and remembers where each value came from.

References use one syntax everywhere: Jinja expressions whose root names are `inputs`
(the program's inputs) or a node id (that node's output), with attribute and index
access into JSON outputs: `{{ inputs.topic }}`, `{{ outline.sections[0] }}`.
Dependencies are inferred from them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

NODE_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a node may not take because templates use them for something else.
RESERVED_NAMES = frozenset(
    {"inputs", "item", "index", "loop", "true", "false", "none", "True", "False", "None"}
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]


class InputSpec(_Model):
    """A typed program input, in JSON-schema style."""

    type: JsonType = "string"
    description: str = ""
    default: Any = None
    items: dict[str, Any] | None = None
    enum: list[Any] | None = None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.items is not None:
            schema["items"] = self.items
        if self.enum is not None:
            schema["enum"] = self.enum
        return schema


class Defaults(_Model):
    """Program-wide defaults for LLM nodes; a node's own value wins."""

    model: str | None = None
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None


class ChatMessage(_Model):
    role: Literal["system", "user", "assistant"]
    content: str


OnError = Literal["fail", "skip", "default"]


class _NodeBase(_Model):
    """Options every node kind shares."""

    description: str = ""
    when: str | None = None
    after: list[str] = Field(default_factory=list)
    timeout: float | None = Field(default=None, gt=0)
    retries: int = Field(default=0, ge=0)
    retry_backoff: float = Field(default=0.5, ge=0)
    on_error: OnError = "fail"
    default: Any = None


class LLMNode(_NodeBase):
    """One LLM call: a prompt or chat messages, each a template."""

    kind: Literal["llm"] = "llm"
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    seed: int | None = None
    n: int = Field(default=1, ge=1)
    output_schema: dict[str, Any] | None = None


class ToolNode(_NodeBase):
    """A call of a registered tool (or `module:function`) with templated arguments."""

    kind: Literal["tool"] = "tool"
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


MapBody = Annotated[LLMNode | ToolNode, Field(discriminator="kind")]


class MapNode(_NodeBase):
    """Fan one llm or tool node out over a list, all items in parallel.

    Inside `node`, the current element is `{{ item }}` (or the name given in `as`) and
    its position is `{{ index }}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["map"] = "map"
    over: str
    item_name: str = Field(default="item", alias="as")
    node: MapBody
    max_parallel: int | None = Field(default=None, ge=1)


Node = Annotated[LLMNode | ToolNode | MapNode, Field(discriminator="kind")]


class Program(_Model):
    """An agent program: a DAG of LLM and tool calls."""

    name: str
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    nodes: dict[str, Node]
    outputs: dict[str, str] = Field(default_factory=dict)

    # Where each value came from in the spec file; None for programs built in Python.
    _source: Any = PrivateAttr(default=None)

    @field_validator("nodes")
    @classmethod
    def _node_ids_are_names(cls, nodes: dict[str, Any]) -> dict[str, Any]:
        for node_id in nodes:
            if not NODE_ID_PATTERN.match(node_id):
                raise ValueError(
                    f"node id '{node_id}' must be a name: letters, digits and '_', "
                    "not starting with a digit"
                )
            if node_id in RESERVED_NAMES:
                raise ValueError(f"node id '{node_id}' is reserved; pick another name")
        return nodes

    def __eq__(self, other: object) -> bool:
        # Where a program was written down is not part of what it is.
        if not isinstance(other, Program):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    def __hash__(self) -> int:
        return hash(self.model_dump_json())

    async def run(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        backend: Any = "vllm",
        model: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Run this program (see `taskloom.runtime.run_program`); returns a RunResult."""
        from taskloom.runtime import run_program

        return await run_program(
            self, inputs, backend=backend, model=model, base_url=base_url, timeout=timeout
        )

    def run_sync(
        self,
        inputs: dict[str, Any] | None = None,
        *,
        backend: Any = "vllm",
        model: str | None = None,
        base_url: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Blocking `run`, on asyncio (the in-process vLLM engine needs it)."""
        import functools

        import anyio

        call = functools.partial(
            self.run, inputs, backend=backend, model=model, base_url=base_url, timeout=timeout
        )
        return anyio.run(call, backend="asyncio")
