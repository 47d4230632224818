"""The spec language as Pydantic models.

Node kinds are not listed here: `Program.nodes` reads each node by its registered
`kind` (`taskloom.program.kinds`), so a new kind is one module and one registration.

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

import jsonschema
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from taskloom.program.budget import Budget
from taskloom.program.kinds import NodeSpec
from taskloom.program.schemas import check_schema
from taskloom.program.spec_model import NodeBase, SpecModel

NODE_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Names a node may not take because templates use them for something else.
RESERVED_NAMES = frozenset(
    {"inputs", "item", "index", "loop", "true", "false", "none", "True", "False", "None"}
)


JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]


class InputSpec(SpecModel):
    """A typed program input, in JSON-schema style."""

    type: JsonType = "string"
    description: str = ""
    default: Any = None
    items: dict[str, Any] | None = None
    enum: list[Any] | None = None

    @field_validator("items")
    @classmethod
    def _items_is_a_schema(cls, items: dict[str, Any] | None) -> dict[str, Any] | None:
        # Checked here, not when a run's inputs are checked, where a bad schema would
        # surface as a traceback rather than as a located spec error.
        if items is not None:
            if not isinstance(items.get("$schema", ""), str):
                raise ValueError("`$schema` must be a string (a metaschema URI)")
            try:
                # As it is used (under `items`), so every $ref must resolve inside that.
                check_schema({"items": items})
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return items

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": self.type}
        if self.items is not None:
            schema["items"] = self.items
        if self.enum is not None:
            schema["enum"] = self.enum
        return schema


class Defaults(SpecModel):
    """Program-wide defaults for LLM nodes; a node's own value wins."""

    model: str | None = None
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = None


class ChatMessage(SpecModel):
    role: Literal["system", "user", "assistant"]
    content: str


AnswerKind = Literal["boxed", "regex", "json_field", "last_number"]


class AnswerSpec(SpecModel):
    """How to pull the answer out of a sample, so that samples can be compared.

    `boxed`: the last `\\boxed{...}`; `regex`: the last match of `pattern` (its group
    named `answer`, else its first group, else the whole match); `json_field`: the value
    at the dotted `field` path of the sample parsed as JSON; `last_number`: the last
    number in the text. Answers are normalized before they are compared unless
    `normalize` is false.
    """

    kind: AnswerKind = "last_number"
    pattern: str | None = None
    field: str | None = None
    normalize: bool = True

    @model_validator(mode="after")
    def _options_fit_kind(self) -> AnswerSpec:
        if (self.kind == "regex") != (self.pattern is not None):
            raise ValueError("answer: `pattern` goes with kind 'regex', and only with it")
        if (self.kind == "json_field") != (self.field is not None):
            raise ValueError("answer: `field` goes with kind 'json_field', and only with it")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"answer: pattern is not a valid regex: {exc}") from None
        return self


class _EarlyStopBase(SpecModel):
    # Samples of this node in flight at once when no scheduler allocates them; None:
    # all n at once (fastest, but a rule that fires can only abort what is still running).
    parallel: int | None = Field(default=None, ge=1)


class CertaindexStop(_EarlyStopBase):
    """Stop once the certaindex (1 - normalized entropy of the answers) reaches
    `threshold`, checked from the `first_check`-th finished sample on."""

    rule: Literal["certaindex"] = "certaindex"
    threshold: float = Field(default=0.7, gt=0.0, le=1.0)
    first_check: int = Field(default=4, ge=1)


class BetaStop(_EarlyStopBase):
    """Adaptive-Consistency's Beta rule: stop once P(leader beats runner-up) >= confidence."""

    rule: Literal["beta"] = "beta"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class DirichletStop(_EarlyStopBase):
    """Adaptive-Consistency's Dirichlet rule: stop once P(leader is the most likely answer)
    >= confidence."""

    rule: Literal["dirichlet"] = "dirichlet"
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


class NoStop(_EarlyStopBase):
    """Always take all n samples."""

    rule: Literal["none"] = "none"


EarlyStopSpec = Annotated[
    CertaindexStop | BetaStop | DirichletStop | NoStop, Field(discriminator="rule")
]


class ProbeSpec(SpecModel):
    """Dynasor-CoT probing of one long generation.

    Every `every` generated tokens, a short completion (`max_tokens`) of the prompt so
    far plus `cue` asks for the answer; probes whose text contains a `hedge_words` word
    are discarded; the generation stops once the last `agree` probe answers are equal.
    The probe answer is read with the node's `answer` spec from `cue` + probe text (so a
    cue ending in `\\boxed{` goes with the default `boxed` kind).
    """

    every: int = Field(default=32, ge=1)
    agree: int = Field(default=3, ge=2)
    max_tokens: int = Field(default=12, ge=1)
    cue: str = "\n\nSo, without more checking, the final answer is \\boxed{"
    hedge_words: list[str] = Field(
        default_factory=lambda: ["wait", "hmm", "maybe", "perhaps", "unsure", "not sure",
                                 "however", "alternatively", "but"]
    )
    temperature: float = Field(default=0.0, ge=0.0)


class LLMNode(NodeBase):
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
    # Self-consistency and early stopping (taskloom.orchestrator.certainty): a node
    # with any of these returns {answer, votes, samples_used, certainty, stopped_early}.
    aggregate: Literal["vote"] | None = None
    answer: AnswerSpec | None = None
    early_stop: EarlyStopSpec | None = None
    probe: ProbeSpec | None = None


class ToolNode(NodeBase):
    """A call of a registered tool (or `module:function`) with templated arguments."""

    kind: Literal["tool"] = "tool"
    tool: str
    args: dict[str, Any] = Field(default_factory=dict)


MapBody = Annotated[LLMNode | ToolNode, Field(discriminator="kind")]


class MapNode(NodeBase):
    """Fan one llm or tool node out over a list, all items in parallel.

    Inside `node`, the current element is `{{ item }}` (or the name given in `as`) and
    its position is `{{ index }}`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: Literal["map"] = "map"
    over: str | list[Any]  # a template that gives a list, or the list itself
    item_name: str = Field(default="item", alias="as")
    node: MapBody
    max_parallel: int | None = Field(default=None, ge=1)


PlanFormat = Literal["text", "json"]
PlannerName = Literal["llmcompiler", "react"]


class PlanNode(NodeBase):
    """An LLM planner answers `question` by calling `tools` (LLMCompiler or ReAct).

    With `planner: llmcompiler` the model writes a plan of tool calls with `$N`
    references; the tasks run in parallel while the plan is still streaming, and a
    joiner either finishes or asks for a new plan (at most `max_replans` times); a plan
    holds at most `max_tasks` tasks. With
    `planner: react` it takes one Thought/Action/Observation step per LLM call, at most
    `max_steps` of them. `format: json` asks the engine for a JSON plan (structured
    outputs), which small models get right far more often. The output is the answer,
    shaped by `output_schema` when given.
    """

    kind: Literal["plan"] = "plan"
    question: str
    tools: list[str] = Field(min_length=1)
    planner: PlannerName = "llmcompiler"
    format: PlanFormat = "text"
    max_replans: int = Field(default=1, ge=0)
    max_tasks: int = Field(default=16, ge=1)
    max_steps: int = Field(default=8, ge=1)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0)
    seed: int | None = None
    examples: str | None = None
    output_schema: dict[str, Any] | None = None


Node = NodeBase
"""A node of any kind (the registered kinds are in `taskloom.program.kinds`)."""


class Program(SpecModel):
    """An agent program: a DAG of LLM and tool calls."""

    name: str
    description: str = ""
    inputs: dict[str, InputSpec] = Field(default_factory=dict)
    defaults: Defaults = Field(default_factory=Defaults)
    nodes: dict[str, NodeSpec]
    outputs: dict[str, str] = Field(default_factory=dict)
    # The scheduling policy for this program's LLM calls (`plas`, `atlas`, `fcfs`, ...);
    # None leaves the choice to the caller (the CLI's --policy, else the default).
    policy: str | None = None
    # Hard limits on each run of this program (see `taskloom.program.budget`).
    budget: Budget | None = None

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
