"""The HTTP API (FastAPI): submit, list, show, stream and cancel runs; programs, health,
metrics. Every route that touches a run answers only for the tenant whose key asked."""

from __future__ import annotations

import functools
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from taskloom.orchestrator.store import RunRow, RunStore, StoredStatus
from taskloom.serve.config import LOCAL_TENANT, ServeConfig
from taskloom.serve.dashboard import mount_dashboard
from taskloom.serve.manager import RunManager
from taskloom.serve.programs import named_programs
from taskloom.serve.services import Services, open_services
from taskloom.serve.submission import Refusal, SubmitBody, check_submission, parse_body
from taskloom.serve.views import KEEP_ALIVE, sse, stored_run_json

KEEP_ALIVE_S = 15.0
# Specs parsed and compiled at once: each holds the GIL, which the event loop needs too.
CHECK_THREADS = 2


def create_app(config: ServeConfig) -> FastAPI:
    tenants = config.tenants()
    programs = named_programs(config.specs)
    state: dict[str, Services] = {}
    checking: dict[str, anyio.CapacityLimiter] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(config) as services:
            state["services"] = services
            checking["slots"] = anyio.CapacityLimiter(CHECK_THREADS)
            yield

    app = FastAPI(
        title="taskloom",
        summary="Run LLM agent programs on one shared, program-aware scheduler.",
        lifespan=lifespan,
    )

    def services() -> Services:
        return state["services"]

    def tenant_of(request: Request) -> str:
        if not tenants:
            return LOCAL_TENANT
        given = request.headers.get("x-api-key") or _bearer(request.headers.get("authorization"))
        if given:
            for key, tenant in tenants.items():
                if hmac.compare_digest(given.encode(), key.encode()):
                    return tenant
        raise Refusal(401, "a valid API key is required: Authorization: Bearer KEY")

    def own_run(run_id: str, tenant: str) -> RunRow:
        row = services().store.get(run_id)
        if row is None or row.tenant != tenant:
            raise Refusal(404, f"no run '{run_id}'")  # another tenant's run is not there
        return row

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.post(
        "/v1/runs", status_code=202,
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": SubmitBody.model_json_schema()}}}},
    )
    async def submit(request: Request) -> JSONResponse:
        """Start a run of a named program or of a spec; answers at once with its id."""
        tenant = tenant_of(request)
        limits = config.limits
        body = parse_body(await _read_at_most(request, limits.max_body_bytes), limits)
        current = services()
        # In a worker thread: a large or hostile spec takes a second to parse and compile,
        # and on the event loop's thread that second would stop every tenant's runs.
        submission = await anyio.to_thread.run_sync(functools.partial(
            check_submission, body, limits=limits, programs=programs,
            tools=current.runtime.tools, allow_import_tools=config.allow_import_tools,
        ), limiter=checking["slots"])
        run_id = current.manager.submit(submission, tenant)
        return JSONResponse({"run_id": run_id, "status": "running"}, status_code=202)

    @app.get("/v1/runs")
    async def list_runs(request: Request, status: str | None = None, limit: int = 50) -> Any:
        """This tenant's runs, newest first."""
        tenant = tenant_of(request)
        if status is not None and status not in set(StoredStatus):
            choices = ", ".join(s.value for s in StoredStatus)
            raise Refusal(422, f"unknown status '{status}'; choose from {choices}")
        if not 1 <= limit <= 1000:
            raise Refusal(422, "limit must be between 1 and 1000")
        rows = services().store.runs(
            tenant=tenant, status=StoredStatus(status) if status else None, limit=limit)
        return {"runs": [row.summary() for row in rows]}

    @app.get("/v1/runs/{run_id}")
    async def show_run(run_id: str, request: Request) -> Any:
        """One run, as `taskloom run --json` prints it."""
        row = own_run(run_id, tenant_of(request))
        return stored_run_json(services().store, row)

    @app.get("/v1/runs/{run_id}/events")
    async def run_events(run_id: str, request: Request, after: int = 0) -> StreamingResponse:
        """Server-Sent Events: each node event as it happens, then `result`. Send
        Last-Event-ID (or ?after=N) to continue where a dropped stream stopped."""
        own_run(run_id, tenant_of(request))
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() else after
        return StreamingResponse(
            _stream(services(), run_id, start), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/runs/{run_id}/cancel", status_code=202)
    async def cancel_run(run_id: str, request: Request) -> Any:
        """Abort the run's in-flight calls; what it computed stays in the store."""
        row = own_run(run_id, tenant_of(request))
        if not services().manager.cancel(run_id):
            raise Refusal(409, f"run '{run_id}' is not running (it is {row.status.value})")
        return {"run_id": run_id, "status": "cancelling"}

    @app.get("/v1/programs")
    async def list_programs(request: Request) -> Any:
        """The programs under the server's --specs folder, runnable by name."""
        tenant_of(request)
        return {"programs": [p.describe() for p in programs.values()]}

    @app.get("/healthz")
    async def healthz() -> Any:
        current = services()
        return {"status": "ok", "backend": current.runtime.backend.name,
                "runs_in_flight": current.manager.in_flight()}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(services().metrics.registry),
                        media_type=CONTENT_TYPE_LATEST)

    mount_dashboard(app, services, tenant_of, own_run)
    return app


async def _stream(services: Services, run_id: str, after: int) -> AsyncIterator[str]:
    # The run goes on whatever happens here: a client that leaves only ends this loop.
    store: RunStore = services.store
    manager: RunManager = services.manager
    try:
        while True:
            changed = manager.changed(run_id)  # taken before reading: no wake-up is missed
            for event in store.events_after(run_id, after):
                yield sse(event)
                after = event.seq
                if event.kind == "result":
                    return
            if not manager.is_active(run_id):
                row = store.get(run_id)
                if row is not None and row.status is not StoredStatus.RUNNING:
                    manager.finish_stream(run_id)
                    continue
            with anyio.move_on_after(KEEP_ALIVE_S) as waited:
                await changed.wait()
            if waited.cancelled_caught:
                yield KEEP_ALIVE
    finally:
        manager.stop_watching(run_id)


async def _read_at_most(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be too large (a chunked upload
    carries no length to check first)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Refusal(413, f"request body of {declared} bytes exceeds the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refusal(413, f"request body exceeds the limit of {limit} bytes")
    return bytes(body)


def _bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None
