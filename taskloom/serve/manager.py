"""The runs a server is executing: started on submit, resumed after a restart, cancelled
on request, each run's events stored (numbered) and handed to whoever streams them."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

import anyio
from anyio.abc import TaskGroup

from taskloom.cli_render import run_result_json
from taskloom.orchestrator.events import EventSink, NodeEvent
from taskloom.orchestrator.result import RunResult
from taskloom.orchestrator.store import RunRow, RunStore, StoredStatus
from taskloom.runtime import Runtime
from taskloom.serve.metrics import ServeMetrics
from taskloom.serve.submission import Refusal, Submission

ORIGIN = "serve"
RunStarter = Callable[[anyio.Event, EventSink], Awaitable[RunResult]]


@dataclass
class ActiveRun:
    run_id: str
    tenant: str
    cancel: anyio.Event = field(default_factory=anyio.Event)


class RunManager:
    """Owns the task group every run executes in; use it as an async context manager."""

    def __init__(
        self, runtime: Runtime, store: RunStore, metrics: ServeMetrics, max_in_flight: int
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.metrics = metrics
        self.max_in_flight = max_in_flight
        self._active: dict[str, ActiveRun] = {}
        self._changed: dict[str, anyio.Event] = {}
        self._group: TaskGroup | None = None
        self._stopping = False

    async def __aenter__(self) -> RunManager:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        for row in self.store.runs(status=StoredStatus.RUNNING, origin=ORIGIN):
            self._resume(row)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        # A server that stops leaves its runs `running` in the store, for the next one.
        self._stopping = True
        assert self._group is not None
        self._group.cancel_scope.cancel()
        return await self._group.__aexit__(kind, exc, tb)

    def in_flight(self, tenant: str | None = None) -> int:
        return sum(1 for run in self._active.values() if tenant in (None, run.tenant))

    def is_active(self, run_id: str) -> bool:
        return run_id in self._active

    def submit(self, submission: Submission, tenant: str) -> str:
        if self.in_flight(tenant) >= self.max_in_flight:
            raise Refusal(429, f"this tenant already has {self.max_in_flight} runs in flight, "
                               "the server's limit; wait for one to finish")
        run_id = uuid.uuid4().hex[:16]
        program = submission.program
        policy = submission.policy or program.policy or self.runtime.policy
        self.store.create_run(RunRow(
            run_id=run_id, program=program.name, status=StoredStatus.RUNNING, tenant=tenant,
            origin=ORIGIN, spec_text=submission.spec_text, spec_file=submission.spec_file,
            inputs=submission.inputs, policy=policy,
        ))

        def start(cancel: anyio.Event, sink: EventSink) -> Awaitable[RunResult]:
            return self.runtime.run(program, submission.inputs, policy=policy, run_id=run_id,
                                    cancel=cancel, on_event=sink, budget=submission.budget)

        self._start(ActiveRun(run_id, tenant), start)
        return run_id

    def _resume(self, row: RunRow) -> None:
        def start(cancel: anyio.Event, sink: EventSink) -> Awaitable[RunResult]:
            return self.runtime.resume(row.run_id, cancel=cancel, on_event=sink)

        self._start(ActiveRun(row.run_id, row.tenant), start)

    def _start(self, run: ActiveRun, start: RunStarter) -> None:
        assert self._group is not None, "the manager is not open"
        self._active[run.run_id] = run
        self.metrics.runs_in_flight.set(len(self._active))
        self._group.start_soon(self._drive, run, start, name=f"run {run.run_id}")

    async def _drive(self, run: ActiveRun, start: RunStarter) -> None:
        try:
            result = await start(run.cancel, self._sink(run.run_id))
        except anyio.get_cancelled_exc_class():
            if self._stopping:
                with anyio.CancelScope(shield=True):
                    self.store.set_status(run.run_id, StoredStatus.RUNNING)
            raise
        except Exception as exc:  # a run that cannot run ends failed, never lost
            self.store.set_status(run.run_id, StoredStatus.FAILED, f"{type(exc).__name__}: {exc}")
            self.finish_stream(run.run_id)
        else:
            self.metrics.run_ended(result)
            self.record_result(result)
        finally:
            self._active.pop(run.run_id, None)
            self.metrics.runs_in_flight.set(len(self._active))
            self.metrics.forget_run(run.run_id)
            self._notify(run.run_id)

    def _sink(self, run_id: str) -> EventSink:
        def on_event(event: NodeEvent) -> None:
            self.metrics.observe(event)
            self.store.append_event(run_id, "node", _event_json(event))
            self._notify(run_id)

        return on_event

    def record_result(self, result: RunResult) -> None:
        self.store.append_event(result.run_id, "result", run_result_json(result))
        self._notify(result.run_id)

    def finish_stream(self, run_id: str) -> None:
        """Close a finished run's stream with its stored result, if it has none yet (a
        crash between the final commit and the last event leaves it without)."""
        events = self.store.events_after(run_id, 0)
        if events and events[-1].kind == "result":
            return
        self.record_result(self.store.load(run_id))

    def cancel(self, run_id: str) -> bool:
        run = self._active.get(run_id)
        if run is None:
            return False
        run.cancel.set()
        return True

    def changed(self, run_id: str) -> anyio.Event:
        """Set the next time `run_id` has a new event or ends."""
        if run_id not in self._changed:
            self._changed[run_id] = anyio.Event()
        return self._changed[run_id]

    def stop_watching(self, run_id: str) -> None:
        """A stream of a run that no longer runs has ended: drop its wake-up."""
        if run_id not in self._active:
            self._changed.pop(run_id, None)

    def _notify(self, run_id: str) -> None:
        waiting = self._changed.pop(run_id, None)
        if waiting is not None:
            waiting.set()


def _event_json(event: NodeEvent) -> dict[str, object]:
    return {
        "run_id": event.run_id,
        "node_id": event.node_id,
        "status": event.status.value,
        "at_s": event.at_s,
        "attempt": event.attempt,
        "generated_tokens": event.generated_tokens,
        "error": event.error,
        "parent": event.parent,
    }
