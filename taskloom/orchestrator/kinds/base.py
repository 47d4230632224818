"""The node-kind seam: what one kind of node (llm, tool, map, plan, ...) supplies.

A kind says where its templates are, what its output looks like, what can be checked
before a run, and how one attempt runs. The compiler and the executor only ask the
registry (`taskloom.orchestrator.kinds.registry`); adding a kind is one module and one
registration in the wiring module, `taskloom.runtime`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar

from taskloom.program.spec_model import NodeBase
from taskloom.telemetry.tracer import NO_TRACER, Tracer

if TYPE_CHECKING:
    from taskloom.orchestrator.llm_call import CallLedger
    from taskloom.orchestrator.result import NodeResult
    from taskloom.orchestrator.scheduler.base import Scheduler
    from taskloom.orchestrator.tool_catalog import ToolCatalog
    from taskloom.program.models import Defaults, Program
    from taskloom.program.refs import RefPath
    from taskloom.tools.registry import ToolRegistry

SpecPath = tuple[str | int, ...]
JsonSchema = dict[str, Any]
NodeT = TypeVar("NodeT", bound=NodeBase)


@dataclass(frozen=True)
class TemplateSite:
    """One templated string in the spec, and the names bound where it is evaluated."""

    path: SpecPath
    text: str
    is_condition: bool = False
    bound: frozenset[str] = frozenset()


def value_sites(value: Any, path: SpecPath, bound: frozenset[str]) -> Iterator[TemplateSite]:
    """Every string inside a JSON-like value (tool arguments), each a template."""
    if isinstance(value, str):
        yield TemplateSite(path, value, bound=bound)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from value_sites(item, (*path, key), bound)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from value_sites(item, (*path, index), bound)


class KindLookup(Protocol):
    """Finds the kind of a node (a map's body is a node of another kind)."""

    def get(self, name: str) -> NodeKind[Any]: ...


def node_sites(
    node: NodeBase, path: SpecPath, bound: frozenset[str], kinds: KindLookup
) -> Iterator[TemplateSite]:
    """Every template of `node`: its `when` guard, then its kind's own."""
    if node.when is not None:
        yield TemplateSite((*path, "when"), node.when, is_condition=True, bound=bound)
    yield from kinds.get(node.kind).template_sites(node, path, bound, kinds)


class NodeChecks(Protocol):
    """What a kind's static checks may ask of the compiler, and how they report."""

    @property
    def program(self) -> Program: ...

    @property
    def tools(self) -> ToolCatalog | None: ...

    @property
    def kinds(self) -> KindLookup: ...

    def report(
        self,
        message: str,
        path: SpecPath,
        *,
        node: str | None,
        hint: str | None = None,
        at_key: bool = False,
    ) -> None:
        """Record a located spec error; checking goes on."""
        ...

    def check_output_schema(self, node_id: str, schema: JsonSchema, path: SpecPath) -> None: ...

    def check_after(self, node_id: str, upstream: str, path: SpecPath) -> None: ...

    def schema_of(self, reference: RefPath) -> JsonSchema | None:
        """The schema a reference reaches, where it can be known before the run."""
        ...


@dataclass(frozen=True)
class NodeEnvironment:
    """What one attempt of a node needs from the run it belongs to."""

    run_id: str
    node_id: str
    scheduler: Scheduler
    tools: ToolRegistry
    defaults: Defaults
    kinds: KindLookup
    parent_call_ids: tuple[str, ...] = ()
    attempt: int = 1
    # Nodes that appear while the run goes on (the tasks of a planner's plan) are
    # reported here so that they show in the result and trace with their own timings.
    report_subtask: Callable[[NodeResult], None] = field(default=lambda result: None)
    # Seconds since the run started, on the run's clock (virtual under the simulator).
    clock: Callable[[], float] = field(default=lambda: 0.0)
    # Test `tracer.enabled` before using it: with tracing off, nothing is traced.
    tracer: Tracer = NO_TRACER
    # The keep-warm hint for this node's LLM calls (see `orchestrator.keep_warm`).
    keep_warm_s: float | None = None


class NodeKind(ABC, Generic[NodeT]):
    """One kind of node. Subclasses set `name` and `model`, and implement `run`."""

    name: ClassVar[str]
    model: ClassVar[type[NodeBase]]

    def template_sites(
        self, node: NodeT, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        """The node's templates other than `when` (the compiler adds that one)."""
        return iter(())

    def output_schema(self, node: NodeT, kinds: KindLookup) -> JsonSchema | None:
        """The JSON schema of the output; None when it can't be known before a run."""
        return None

    def check(self, node_id: str, node: NodeT, path: SpecPath, checks: NodeChecks) -> None:
        """Report what is wrong with `node` before the run (templates are checked apart)."""
        return None

    @abstractmethod
    async def run(
        self,
        node: NodeT,
        context: Mapping[str, Any],
        env: NodeEnvironment,
        ledger: CallLedger,
    ) -> Any:
        """One attempt: the node's output. The executor owns order, retries and status."""
