"""The web dashboard at `/`: static files vendored in the package (no build step, no
CDN: it works offline), and the two read-only JSON routes it needs besides the run API,
the shared scheduler's state and a run's DAG. Both answer only to a valid API key, like
every run route; the page sends that key as a header and never puts it in a URL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.store import RunRow
from taskloom.serve.run_graph import NoSpecKept, run_graph
from taskloom.serve.scheduler_view import scheduler_state
from taskloom.serve.services import Services
from taskloom.serve.submission import Refusal

STATIC_DIR = Path(__file__).parent / "static"
# The page loads only its own files and talks only to this server: an output of a run
# that holds markup is shown as text, and even injected markup could not load a script.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

TenantOf = Callable[[Request], str]
OwnRun = Callable[[str, str], RunRow]


def mount_dashboard(
    app: FastAPI, services: Callable[[], Services], tenant_of: TenantOf, own_run: OwnRun
) -> None:
    """Add the page, its files, `GET /v1/scheduler` and `GET /v1/runs/{id}/graph`."""

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.get("/v1/scheduler")
    async def scheduler(request: Request) -> Any:
        """The shared schedulers' counters (summed over every tenant, naming no run),
        and this tenant's runs in flight."""
        tenant = tenant_of(request)
        current = services()
        return scheduler_state(
            current.runtime.schedulers(), current.metrics.registry,
            backend=current.runtime.backend.name, tenant=tenant,
            tenant_runs_in_flight=current.manager.in_flight(tenant),
            runs_in_flight=current.manager.in_flight(),
        )

    @app.get("/v1/runs/{run_id}/graph")
    async def graph(run_id: str, request: Request) -> Any:
        """The run's DAG: each node's kind, dependencies and definition (templates)."""
        row = own_run(run_id, tenant_of(request))
        try:
            # A worker thread: compiling a large spec would hold up every tenant's runs.
            return await anyio.to_thread.run_sync(run_graph, row, services().runtime.tools)
        except NoSpecKept as exc:
            raise Refusal(409, str(exc)) from None
        except (SpecError, SpecErrors) as exc:  # e.g. a --tools module gone since
            raise Refusal(409, f"run '{run_id}': its spec no longer compiles: {exc}") from None
