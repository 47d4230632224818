"""Runs a compiled program: every node starts the moment its inputs exist.

There are no waves and no polling. Each finished node counts down its dependents, and a
dependent whose count reaches zero is started in the same task group at once.

A failing node fails only what depends on it; independent branches run to the end, so a
failed or cancelled run keeps every output already computed.
"""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from anyio.abc import TaskGroup

from taskloom.errors import TaskloomError, root_cause
from taskloom.orchestrator.budget_meter import BudgetMeter
from taskloom.orchestrator.compile import TaskGraph
from taskloom.orchestrator.events import EventSink, NodeEvent, ignore_events
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.orchestrator.keep_warm import ToolDurations, warm_followers
from taskloom.orchestrator.kinds.base import NodeEnvironment
from taskloom.orchestrator.kinds.registry import NodeKindRegistry, node_kinds
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.orchestrator.prices import PriceTable
from taskloom.orchestrator.result import NodeResult, NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.call_reports import call_watch_of
from taskloom.program.models import Node, ToolNode
from taskloom.program.refs import TemplateError, evaluate_condition, render_value
from taskloom.program.render_deadline import render_off_loop
from taskloom.telemetry.tracer import NO_TRACER, Tracer
from taskloom.tools.registry import ToolRegistry


@dataclass
class _NodeRecord:
    node_id: str
    kind: str
    status: NodeStatus = NodeStatus.PENDING
    output: Any = None
    error: str | None = None
    started_s: float | None = None
    ended_s: float | None = None
    attempts: int = 0
    ledger: CallLedger = field(default_factory=CallLedger)
    # Set when the node did not run because something it needs failed; such a skip
    # spreads to its own dependents, unlike a skip by a false `when` guard.
    blocked: bool = False

    def freeze(self, prices: PriceTable | None = None) -> NodeResult:
        ledger = self.ledger
        return NodeResult(
            node_id=self.node_id,
            kind=self.kind,
            status=self.status,
            output=self.output,
            error=self.error,
            started_s=self.started_s,
            ended_s=self.ended_s,
            attempts=self.attempts,
            prompt_tokens=self.ledger.usage.prompt_tokens,
            generated_tokens=self.ledger.usage.generated_tokens,
            cached_prompt_tokens=self.ledger.usage.cached_prompt_tokens,
            llm_calls=self.ledger.usage.llm_calls,
            tool_calls=ledger.tool_calls,
            tool_s=ledger.tool_s,
            engine_s=ledger.engine_s,
            queue_s=ledger.queue_s,
            cost_usd=None if prices is None else prices.cost(ledger.usage_by_model),
            preempted=tuple(ledger.preempted),
        )


# Called with a node's result (and its plan's tasks) the moment the node finished, before
# any dependent starts; it returns once they are durable.
Checkpoint = Callable[[list[NodeResult]], None]
_FINISHED = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED)


class Executor:
    """One run of one compiled program.

    `restored`: results of nodes that finished in an earlier try of this run (before a
    crash); they are not run again, and their outputs reach their dependents as if they
    had just finished. `checkpoint` is called as each node finishes (see `Checkpoint`).
    `meter` counts every call against the run's budget as it is made; `prices` adds
    each node's cost.
    `tracer`: spans for the run, its nodes and their calls (off by default).
    `keep_warm`: the runtime's tool durations; when given, an LLM call followed by a
    tool whose result feeds a later LLM call carries a keep-warm hint (see
    `orchestrator.keep_warm`), and every tool node's time is added to the estimate.
    Off by default.
    """

    def __init__(
        self,
        graph: TaskGraph,
        *,
        scheduler: Scheduler,
        tools: ToolRegistry,
        run_id: str | None = None,
        on_event: EventSink = ignore_events,
        kinds: NodeKindRegistry = node_kinds,
        checkpoint: Checkpoint | None = None,
        restored: Mapping[str, NodeResult] | None = None,
        meter: BudgetMeter | None = None,
        prices: PriceTable | None = None,
        tracer: Tracer = NO_TRACER,
        keep_warm: ToolDurations | None = None,
    ) -> None:
        self.graph = graph
        self.kinds = kinds
        self.program = graph.program
        self._tracer = tracer
        self.scheduler = tracer.scheduler(scheduler) if tracer.enabled else scheduler
        self.tools = tools
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.on_event = on_event
        watch = call_watch_of(self.scheduler)
        self._records = {
            node_id: _NodeRecord(node_id, node.kind,
                                 ledger=CallLedger(meter=meter, watch=watch, clock=self._now))
            for node_id, node in self.program.nodes.items()
        }
        self._prices = prices
        # Looked up once: the hot path asks for these several times per node.
        self._dependencies = {n: graph.dependencies(n) for n in self.program.nodes}
        self._dependents = {n: graph.dependents(n) for n in self.program.nodes}
        self._waiting_on = {n: len(deps) for n, deps in self._dependencies.items()}
        self._keep_warm = keep_warm
        self._warm_tools = (
            warm_followers(self.program.nodes, self._dependents) if keep_warm else {}
        )
        self._inputs: dict[str, Any] = {}
        self._checkpoint = checkpoint
        earlier = dict(restored or {})
        self._restored = {n: r for n, r in earlier.items() if n in self._records}
        for node_id, result in self._restored.items():
            record = self._records[node_id]
            record.status, record.output, record.error = result.status, result.output, result.error
        self._subtasks: dict[str, NodeResult] = {
            n: r for n, r in earlier.items() if n not in self._records
        }
        self._visible: dict[str, Any] = {"inputs": self._inputs}
        self._started_at = 0.0
        self._t0 = 0.0

    async def run(self, inputs: Mapping[str, Any]) -> RunResult:
        """Run to the end and return the result. Node failures do not raise; they are in
        the result. If the caller cancels, in-flight calls are aborted, the partial
        result is kept in `self.snapshot()`, and the cancellation propagates."""
        if not self._tracer.enabled:
            return await self._run(inputs)
        with self._tracer.run(self.run_id, self.program.name) as trace:
            result = await self._run(inputs)
            trace.finished(result)
            return result

    async def _run(self, inputs: Mapping[str, Any]) -> RunResult:
        self._inputs = resolve_inputs(self.program, inputs)
        self._visible["inputs"] = self._inputs
        self._t0 = anyio.current_time()
        self._started_at = time.time()
        try:
            async with anyio.create_task_group() as group:
                for node_id, count in self._waiting_on.items():
                    if count == 0:
                        group.start_soon(self._run_node, group, node_id)
        except anyio.get_cancelled_exc_class():
            self._mark_unfinished_cancelled()
            raise
        return self.snapshot(rendered=await render_off_loop(self._render_outputs))

    def snapshot(
        self, status: RunStatus | None = None, error: str | None = None,
        rendered: tuple[dict[str, Any], list[str]] | None = None,
    ) -> RunResult:
        """The result as it stands now; complete once `run` has returned."""
        records = self._records.values()
        if status is None:
            failed = [r.node_id for r in records if r.status is NodeStatus.FAILED]
            cancelled = any(r.status is NodeStatus.CANCELLED for r in records)
            status = RunStatus.CANCELLED if cancelled else (
                RunStatus.FAILED if failed else RunStatus.SUCCEEDED
            )
            if failed and error is None:
                error = "failed nodes: " + ", ".join(failed)
        outputs, output_errors = rendered or self._render_outputs()
        if output_errors and status is RunStatus.SUCCEEDED:
            status = RunStatus.FAILED
            error = "; ".join(output_errors)
        return RunResult(
            run_id=self.run_id,
            program=self.program.name,
            status=status,
            inputs=self._inputs,
            outputs=outputs,
            nodes={
                **{
                    r.node_id: self._restored.get(r.node_id) or r.freeze(self._prices)
                    for r in records
                },
                **self._subtasks,
            },
            error=error,
            started_at=self._started_at,
            wall_s=self._now(),
        )

    def _now(self) -> float:
        return anyio.current_time() - self._t0 if self._started_at else 0.0  # a clock may read 0

    def _context(self, node_id: str | None = None) -> dict[str, Any]:
        """What templates may read. A node sees only the inputs and its dependencies:
        every name a template references is a dependency, and a small context keeps
        each render cheap (Jinja copies the context it is given)."""
        if node_id is None:
            return self._visible
        context = {"inputs": self._inputs}
        for dependency in self._dependencies[node_id]:
            if dependency in self._visible:
                context[dependency] = self._visible[dependency]
        return context

    def _publish(self, record: _NodeRecord) -> None:
        if record.status in (NodeStatus.SUCCEEDED, NodeStatus.SKIPPED):
            self._visible[record.node_id] = record.output

    async def _run_node(self, group: TaskGroup, node_id: str) -> None:
        record = self._records[node_id]
        node = self.program.nodes[node_id]
        blockers = [d for d in self._dependencies[node_id] if self._blocks(d)]
        restored = node_id in self._restored
        if restored:  # finished before a crash: only its outputs are published again
            record.blocked = record.status is NodeStatus.SKIPPED and bool(blockers)
        elif blockers:
            record.status, record.blocked = NodeStatus.SKIPPED, True
            record.error = f"not run: upstream node '{blockers[0]}' failed"
        elif self._tracer.enabled:
            with self._tracer.node(self.run_id, node_id, node.kind, record.freeze):
                await self._attempt_until_done(node_id, node, record)
        else:
            await self._attempt_until_done(node_id, node, record)
        self._publish(record)
        if not restored:
            self._save(record)
            self._emit(record)
            if self._keep_warm is not None and isinstance(node, ToolNode) \
                    and record.ledger.tool_calls:
                self._keep_warm.observe(node.tool, record.ledger.tool_s)
        for dependent in self._dependents[node_id]:
            self._waiting_on[dependent] -= 1
            if self._waiting_on[dependent] == 0:
                group.start_soon(self._run_node, group, dependent)

    def _save(self, record: _NodeRecord) -> None:
        # A node skipped because an upstream failed is not kept: on resume the failure
        # is restored and blocks it again, which a plain skip would not.
        if self._checkpoint is None or record.blocked or record.status not in _FINISHED:
            return
        prefix = record.node_id + "/"
        tasks = [r for n, r in self._subtasks.items() if n.startswith(prefix)]
        self._checkpoint([record.freeze(self._prices), *tasks])

    def _record_subtask(self, parent: str, result: NodeResult) -> None:
        """A task of `parent`'s plan changed state: keep it for the result, tell listeners."""
        self._subtasks[result.node_id] = result
        if self.on_event is ignore_events:
            return
        self.on_event(
            NodeEvent(
                run_id=self.run_id,
                node_id=result.node_id,
                status=result.status,
                at_s=self._now(),
                attempt=result.attempts,
                error=result.error,
                parent=parent,
            )
        )

    def _blocks(self, dependency: str) -> bool:
        upstream = self._records[dependency]
        return upstream.status is NodeStatus.FAILED or upstream.blocked

    async def _attempt_until_done(self, node_id: str, node: Node, record: _NodeRecord) -> None:
        context = self._context(node_id)
        record.started_s = self._now()
        try:
            if node.when is not None and not await render_off_loop(
                    evaluate_condition, node.when, context):
                record.status = NodeStatus.SKIPPED
                return
            record.status = NodeStatus.RUNNING
            self._emit(record)
            record.output = await self._with_retries(node_id, node, record, context)
            record.status = NodeStatus.SUCCEEDED
        except anyio.get_cancelled_exc_class():
            record.status = NodeStatus.CANCELLED
            record.error = "cancelled"
            raise
        except Exception as exc:  # every failure becomes a node status
            self._apply_on_error(node, record, exc)
        finally:
            record.ended_s = self._now()

    async def _with_retries(
        self, node_id: str, node: Node, record: _NodeRecord, context: dict[str, Any]
    ) -> Any:
        parents = tuple(
            call for dep in self._dependencies[node_id]
            for call in self._records[dep].ledger.call_ids
        )
        while True:
            record.attempts += 1
            env = NodeEnvironment(
                run_id=self.run_id,
                node_id=node_id,
                scheduler=self.scheduler,
                tools=self.tools,
                defaults=self.program.defaults,
                kinds=self.kinds,
                parent_call_ids=parents,
                attempt=record.attempts,
                report_subtask=functools.partial(self._record_subtask, node_id),
                clock=self._now,
                tracer=self._tracer,
                keep_warm_s=self._keep_warm_s(node_id),
            )
            kind = self.kinds.get(node.kind)
            try:
                if node.timeout is None:  # no cancel scope to set up on the common path
                    return await kind.run(node, context, env, record.ledger)
                with anyio.fail_after(node.timeout):
                    return await kind.run(node, context, env, record.ledger)
            except TimeoutError as exc:
                failure: Exception = TimeoutError(f"timed out after {node.timeout:g}s")
                failure.__cause__ = exc
            except TemplateError:
                raise  # a template that failed once fails every time
            except Exception as exc:  # retried, then reported
                failure = root_cause(exc)
            if record.attempts > node.retries:
                raise failure
            record.error = _describe(failure)
            await anyio.sleep(node.retry_backoff * 2 ** (record.attempts - 1))

    def _keep_warm_s(self, node_id: str) -> float | None:
        tools = self._warm_tools.get(node_id)
        if self._keep_warm is None or tools is None:
            return None
        return self._keep_warm.ttl_s(tools)

    def _apply_on_error(self, node: Node, record: _NodeRecord, exc: Exception) -> None:
        record.error = _describe(exc)
        if node.on_error == "skip":
            record.status = NodeStatus.SKIPPED
        elif node.on_error == "default":
            record.status, record.output = NodeStatus.SUCCEEDED, node.default
        else:
            record.status = NodeStatus.FAILED

    def _mark_unfinished_cancelled(self) -> None:
        for record in self._records.values():
            if record.status is NodeStatus.RUNNING:
                record.status, record.error = NodeStatus.CANCELLED, "cancelled"
                record.ended_s = self._now()

    def _render_outputs(self) -> tuple[dict[str, Any], list[str]]:
        context = self._context()
        outputs: dict[str, Any] = {}
        errors: list[str] = []
        for name, template in self.program.outputs.items():
            try:
                outputs[name] = render_value(template, context)
            except Exception as exc:  # any failure here is the run's, never a lost run
                outputs[name] = None
                errors.append(f"output '{name}': {_describe(exc)}")
        return outputs, errors

    def _emit(self, record: _NodeRecord) -> None:
        if self.on_event is ignore_events:  # nobody listens: skip building the event
            return
        self.on_event(
            NodeEvent(
                run_id=self.run_id,
                node_id=record.node_id,
                status=record.status,
                at_s=self._now(),
                attempt=record.attempts,
                generated_tokens=record.ledger.usage.generated_tokens,
                error=record.error,
            )
        )


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, TaskloomError) else f"{type(exc).__name__}: {text}"
