"""`taskloom runs`, `show`, `resume` and `cancel`: stored runs, read from this machine's
run store, or from a server with `--server URL`."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Annotated, Any

import anyio
import httpx
import typer
from rich.console import Console
from rich.table import Table

from taskloom.backends.factory import (
    BackendName,
    BackendSettingsError,
    backend_name,
    check_base_url,
)
from taskloom.cli_budget import BudgetOpt, budget_from_options
from taskloom.cli_engine import DtypeOpt, TraceOpt, engine_start
from taskloom.cli_engines import EngineUrlsOpt, engines_backend, first_url, with_engines
from taskloom.cli_render import print_run_result, run_result_json
from taskloom.client import Client, ServerError
from taskloom.errors import BackendError
from taskloom.gantt import write_gantt
from taskloom.orchestrator.draw import UnknownFormat
from taskloom.orchestrator.result import RunResult
from taskloom.orchestrator.store import RunNotFound, RunStore, StoredStatus
from taskloom.runtime import Runtime
from taskloom.serve.views import stored_run_json
from taskloom.tools.registry import ImportPolicy, default_registry

# The exit codes of `taskloom run`, by the status a run ended in.
EXIT_BY_STATUS = {
    "succeeded": 0, "failed": 3, "cancelled": 130, "budget_exceeded": 5, "running": 0,
}
EXIT_BAD_INPUT = 2
EXIT_ENGINE_ERROR = 4

ServerOpt = Annotated[
    str | None, typer.Option("--server", envvar="TASKLOOM_SERVER",
                             help="A taskloom server's URL; default: this machine's store.")
]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="TASKLOOM_API_KEY",
                             help="Your API key on the server.")
]
StoreOpt = Annotated[
    Path | None, typer.Option("--store", help="The run store (default: "
                              "$TASKLOOM_HOME/taskloom.db, else .taskloom/taskloom.db).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def client_for(server: str, api_key: str | None) -> Client:
    return Client(server, api_key=api_key)


def runs(
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List runs, newest first."""
    if status is not None and status not in set(StoredStatus):
        raise fail(f"unknown status '{status}'; choose from "
                   + ", ".join(s.value for s in StoredStatus))
    if server:
        with client_for(server, api_key) as client:
            listed = _remote(lambda: client.runs(status=status, limit=limit))
    else:
        rows = RunStore(store).runs(status=StoredStatus(status) if status else None, limit=limit)
        listed = [row.summary() for row in rows]
    if json_out:
        typer.echo(json.dumps(listed, indent=2, default=str))
        return
    table = Table(title=f"{len(listed)} runs")
    for column in ("run", "program", "status", "policy", "created", "wall s", "error"):
        table.add_column(column, no_wrap=column != "error")
    for run in listed:
        created = datetime.datetime.fromtimestamp(run["created_at"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(run["run_id"], run["program"], run["status"], run["policy"] or "",
                      created, f"{run['wall_s']:.2f}", run["error"] or "")
    Console().print(table)


def show(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    server: ServerOpt = None,
    api_key: ApiKeyOpt = None,
    store: StoreOpt = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Draw the run's timeline instead: .png, .svg, or .html (one "
        "self-contained file to share).")] = None,
) -> None:
    """Print one run as `taskloom run --json` does, or draw its timeline (-o)."""
    if output is not None and not output.parent.is_dir():
        raise fail(f"cannot write {output}: the folder {output.parent} does not exist")
    if server:
        with client_for(server, api_key) as client:
            shown = _remote(lambda: client.get(run_id))
    else:
        local = RunStore(store)
        row = local.get(run_id)
        if row is None:
            raise fail(f"no run '{run_id}' in {local.path}")
        shown = stored_run_json(local, row)
    if output is None:
        typer.echo(json.dumps(shown, indent=2, default=str))
        return
    try:
        write_gantt(shown, output)
    except (UnknownFormat, OSError) as exc:
        raise fail(str(exc)) from None
    typer.echo(f"wrote {output}")


def cancel(
    run_id: Annotated[str, typer.Argument(help="The run's id.")],
    server: Annotated[str, typer.Option("--server", envvar="TASKLOOM_SERVER",
                                        help="The server running it.")],
    api_key: ApiKeyOpt = None,
) -> None:
    """Cancel a run on a server; what it computed so far stays stored."""
    with client_for(server, api_key) as client:
        answer = _remote(lambda: client.cancel(run_id))
    typer.echo(f"{answer['run_id']}: {answer['status']}")


def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue.")],
    backend: Annotated[str, typer.Option(
        help="Engine: " + ", ".join(b.value for b in BackendName))] = "vllm",
    model: Annotated[str | None, typer.Option(help="Model path or name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai.")] = None,
    store: StoreOpt = None,
    tools_root: Annotated[Path, typer.Option(help="Folder read_file may read.")] = Path("."),
    allow_host: Annotated[list[str] | None, typer.Option(help="A host http_get may fetch.")] = None,
    allow_import: Annotated[list[str] | None, typer.Option(
        "--allow-import", help="A module prefix whose functions may be imported as tools; "
        "the modules beside the run's spec file are trusted as for `run`.")] = None,
    json_out: JsonOpt = False,
    dtype: DtypeOpt = None,
    engine_urls: EngineUrlsOpt = None,
    budget: BudgetOpt = None,
    trace: TraceOpt = False,
) -> None:
    """Continue a run that a crash (or kill -9) cut short.

    Nodes that finished are loaded and not run again; nodes that were in flight run
    again from their start; a `plan` node or a vote in flight restarts as a whole. A
    `--budget` counts the finished nodes' use too. Exit codes as for `run`."""
    backend = engines_backend(backend, base_url, engine_urls)
    try:
        check_base_url(backend_name(backend), base_url or first_url(engine_urls))
    except BackendSettingsError as exc:
        raise fail(str(exc)) from None
    engine = with_engines(engine_start(BackendName(backend), dtype), engine_urls)
    limits = budget_from_options(budget)
    local = RunStore(store)
    row = local.get(run_id)
    if row is None:
        raise fail(f"no run '{run_id}' in {local.path}")
    if not json_out:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    prefixes = tuple(allow_import or ())
    trusted = (ImportPolicy.beside(row.spec_file, prefixes) if row.spec_file
               and Path(row.spec_file).is_file() else ImportPolicy(prefixes=prefixes))
    tools = default_registry(root=tools_root, allowed_hosts=allow_host or (),
                             import_policy=trusted)

    async def main() -> RunResult:
        async with Runtime.open(backend, model=model, base_url=base_url, tools=tools,
                                store=local, budget=limits, trace=trace or None,
                                **engine.options) as runtime:
            return await runtime.resume(run_id)

    try:
        result = anyio.run(main, backend="asyncio")
    except (RunNotFound, ValueError) as exc:
        raise fail(str(exc)) from None
    except BackendError as exc:
        raise fail(f"engine error: {exc}", EXIT_ENGINE_ERROR) from None
    if json_out:
        typer.echo(json.dumps(run_result_json(result), indent=2, default=str))
    else:
        print_run_result(result, Console())
    if result.engines is not None and result.engines.every_engine_lost:
        raise typer.Exit(EXIT_ENGINE_ERROR)
    raise typer.Exit(EXIT_BY_STATUS[result.status.value])


def _remote(call: Any) -> Any:
    try:
        return call()
    except ServerError as exc:
        raise fail(str(exc), 1 if exc.status == 422 else EXIT_BAD_INPUT) from None
    except httpx.TransportError as exc:
        raise fail(f"cannot reach the server: {exc}", EXIT_ENGINE_ERROR) from None
