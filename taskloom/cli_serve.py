"""`taskloom serve` and `taskloom submit`, and the one place the run-store and server
commands are added to the `taskloom` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from taskloom.backends.factory import (
    BackendName,
    BackendSettingsError,
    backend_name,
    check_base_url,
)
from taskloom.cli_budget import BudgetOpt, PricesOpt, budget_from_options, prices_from_option
from taskloom.cli_engine import TraceOpt
from taskloom.cli_engines import (
    EngineUrlsOpt,
    RayAddressOpt,
    RayOpt,
    ReplicasOpt,
    engines_backend,
    first_url,
    ray_options,
)
from taskloom.cli_runs import (
    EXIT_BAD_INPUT,
    EXIT_BY_STATUS,
    EXIT_ENGINE_ERROR,
    ApiKeyOpt,
    JsonOpt,
    cancel,
    fail,
    resume,
    runs,
    show,
)
from taskloom.client import Client, ServerError
from taskloom.program.mcp_servers import read_mcp_config
from taskloom.serve.config import Limits, ServeConfig, ServeConfigError, keys_from_env
from taskloom.serve.services import tool_module

_LIMITS = Limits()


def register_commands(app: typer.Typer) -> None:
    for command in (serve, submit, runs, show, cancel, resume):
        app.command()(command)


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs "
                                      "--api-key.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8321,
    backend: Annotated[str, typer.Option(
        help="Engine: " + ", ".join(b.value for b in BackendName))] = "vllm",
    model: Annotated[str | None, typer.Option(help="Model path or name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai.")] = None,
    policy: Annotated[str | None, typer.Option(help="Default scheduling policy.")] = None,
    sim_speed: Annotated[float, typer.Option(
        help="--backend sim: run the simulated engine this many times faster than real "
        "time.")] = 1.0,
    sim_stream_interval: Annotated[int, typer.Option(
        help="--backend sim: tokens per streamed chunk (1: every token).")] = 1,
    dtype: Annotated[str | None, typer.Option(
        help="--backend vllm: the engine's dtype (float32 makes greedy answers independent "
        "of the batch).")] = None,
    store: Annotated[Path | None, typer.Option(help="The run store (SQLite file).")] = None,
    specs: Annotated[Path | None, typer.Option(help="Folder of programs clients may run by "
                                               "name.")] = None,
    api_key: Annotated[list[str] | None, typer.Option(
        "--api-key", help="An API key (repeatable); each key is a tenant. Also "
        "TASKLOOM_API_KEYS=k1,k2.")] = None,
    allow_import_tools: Annotated[bool, typer.Option(
        help="Let specs sent over HTTP use `module:function` tools (of the modules "
        "under --allow-import only).")] = False,
    allow_import: Annotated[list[str] | None, typer.Option(
        "--allow-import", help="A module prefix whose functions may be imported as "
        "tools (repeatable).")] = None,
    tools_root: Annotated[Path, typer.Option(help="Folder read_file may read.")] = Path("."),
    allow_host: Annotated[list[str] | None, typer.Option(help="A host http_get may fetch "
                                                         "(repeatable).")] = None,
    tools: Annotated[list[str] | None, typer.Option(
        "--tools", help="A Python module whose @tool functions the server registers "
        "(repeatable); specs refer to them by name.")] = None,
    mcp_config: Annotated[Path | None, typer.Option(
        "--mcp-config", help="A YAML file with `mcp_servers:` (as in a spec): the MCP "
        "servers the server opens at start, whose tools every spec may call as "
        "NAME.TOOL. Specs sent over HTTP may not declare their own.")] = None,
    max_runs_in_flight: Annotated[int, typer.Option(
        min=1, help="Runs one tenant may have in flight.")] = _LIMITS.max_runs_in_flight,
    max_spec_bytes: Annotated[int, typer.Option(min=1)] = _LIMITS.max_spec_bytes,
    max_input_bytes: Annotated[int, typer.Option(min=1)] = _LIMITS.max_input_bytes,
    max_nodes: Annotated[int, typer.Option(min=1)] = _LIMITS.max_nodes,
    engine_urls: EngineUrlsOpt = None,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    replicas: ReplicasOpt = None,
    budget: BudgetOpt = None,
    prices: PricesOpt = None,
    trace: TraceOpt = False,
) -> None:
    """Serve programs over HTTP: one engine and one scheduler for every client's runs.

    Runs survive a crash: each finished node is in the store, and a restarted server
    resumes the runs that were running. API docs at /docs."""
    backend = engines_backend(backend, base_url, engine_urls)
    ray_options(ray, ray_address, replicas, engine_urls, base_url, backend)  # exits if they clash
    try:
        servers = read_mcp_config(mcp_config).mcp_servers if mcp_config else {}
    except ValueError as exc:
        raise fail(str(exc)) from None
    config = ServeConfig(
        host=host, port=port, backend=backend, model=model, base_url=base_url, policy=policy,
        engines=tuple(engine_urls or ()), ray=ray, ray_address=ray_address, replicas=replicas,
        sim_speed=sim_speed, sim_stream_interval=sim_stream_interval, dtype=dtype,
        store=store, specs=specs, api_keys=tuple(api_key or ()) + keys_from_env(),
        allow_import_tools=allow_import_tools, allow_import=tuple(allow_import or ()),
        tools_root=tools_root,
        allow_hosts=tuple(allow_host or ()), tool_modules=tuple(tools or ()),
        mcp_servers=servers, mcp_config_dir=mcp_config.parent.resolve() if mcp_config else None,
        limits=Limits(max_spec_bytes=max_spec_bytes, max_input_bytes=max_input_bytes,
                      max_nodes=max_nodes, max_runs_in_flight=max_runs_in_flight),
        budget=budget_from_options(budget), prices=prices_from_option(prices),
        trace=trace or None,
    )
    try:
        check_base_url(backend_name(backend), base_url or first_url(engine_urls))
        config.check()
        for module_name in config.tool_modules:
            tool_module(module_name)
    except (ServeConfigError, BackendSettingsError) as exc:
        raise fail(str(exc)) from None
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # Imported here: FastAPI and uvicorn are not needed by the other commands.
    from taskloom.serve.main import serve_forever

    serve_forever(config)


def submit(
    spec_or_name: Annotated[str, typer.Argument(help="A spec file, or the name of one of "
                                                "the server's programs.")],
    server: Annotated[str, typer.Option("--server", envvar="TASKLOOM_SERVER",
                                        help="The server's URL.")],
    input: Annotated[list[str] | None, typer.Option(
        "-i", "--input", help="KEY=VALUE (repeatable); VALUE is parsed as JSON when it can be.")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="Scheduling policy.")] = None,
    wait: Annotated[bool, typer.Option(help="Stream the run's events until it ends.")] = False,
    api_key: ApiKeyOpt = None,
    json_out: JsonOpt = False,
    budget: BudgetOpt = None,
) -> None:
    """Submit a run to a server; print its id, or with --wait, its progress and result."""
    inputs = _pairs(input or [])
    limits = budget_from_options(budget)
    budget_json = None if limits is None else limits.limits()
    path = Path(spec_or_name)
    with Client(server, api_key=api_key) as client:
        try:
            if path.is_file():
                run_id = client.submit(path, inputs=inputs, policy=policy, budget=budget_json)
            else:
                run_id = client.submit(program=spec_or_name, inputs=inputs, policy=policy,
                                       budget=budget_json)
            if not wait:
                typer.echo(json.dumps({"run_id": run_id}) if json_out else run_id)
                return
            result = _follow(client, run_id, quiet=json_out)
        except ServerError as exc:
            raise fail(str(exc), 1 if exc.status == 422 else EXIT_BAD_INPUT) from None
        except httpx.TransportError as exc:
            raise fail(f"cannot reach {server}: {exc}", EXIT_ENGINE_ERROR) from None
    typer.echo(json.dumps(result, indent=2, default=str) if json_out else
               f"{run_id}: {result['status']}\n" + json.dumps(result["outputs"], indent=2))
    raise typer.Exit(EXIT_BY_STATUS.get(str(result["status"]), 3))


def _follow(client: Client, run_id: str, *, quiet: bool) -> dict[str, Any]:
    if not quiet:
        typer.echo(f"run {run_id}", err=True)
    for event in client.events(run_id):
        if event.kind == "result":
            return event.data
        if not quiet:
            data = event.data
            indent = "    " if data.get("parent") else "  "
            note = f"  {data['error']}" if data.get("error") else ""
            typer.echo(f"{indent}{data['node_id']}: {data['status']}{note}", err=True)
            sys.stderr.flush()
    return client.get(run_id)


def _pairs(pairs: list[str]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise fail(f"-i expects KEY=VALUE, got '{pair}'")
        try:
            given[key] = json.loads(raw)
        except json.JSONDecodeError:
            given[key] = raw  # plain text is a string input
    return given
