"""The `taskloom` command line: check, run and draw agent programs."""

from __future__ import annotations

import math
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import anyio
import typer
from rich.console import Console

from taskloom.backends.factory import BackendName, BackendSettingsError, check_base_url
from taskloom.bench.cli import bench_app
from taskloom.cli_budget import (
    EXIT_BUDGET_EXCEEDED,
    BudgetOpt,
    PricesOpt,
    budget_from_options,
    prices_from_option,
)
from taskloom.cli_engine import DtypeOpt, EngineStart, TraceOpt, engine_start
from taskloom.cli_engines import (
    EngineUrlsOpt,
    RayAddressOpt,
    RayOpt,
    ReplicasOpt,
    engines_backend,
    first_url,
    ray_options,
    with_engines,
    with_ray,
)
from taskloom.cli_mcp import mcp, with_declared_servers
from taskloom.cli_render import LiveProgress, print_run_result, run_result_json, strict_json
from taskloom.cli_serve import register_commands
from taskloom.errors import (
    BackendError,
    SpecError,
    SpecErrors,
    TaskloomError,
    ToolError,
    root_cause,
)
from taskloom.orchestrator.compile import TaskGraph, compile_program, describe
from taskloom.orchestrator.draw import UnknownFormat, write_graph
from taskloom.orchestrator.inputs import (
    InputError,
    NotStrictJson,
    decode_json_object,
    decode_json_value,
    resolve_inputs,
)
from taskloom.orchestrator.prices import PriceTable
from taskloom.orchestrator.result import RunResult, RunStatus
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY, UnknownPolicy, check_policy
from taskloom.orchestrator.store import RunStore
from taskloom.program.budget import Budget
from taskloom.program.load import load
from taskloom.runtime import Runtime
from taskloom.tools.builtin.http_get import HostAllowList
from taskloom.tools.registry import ImportPolicy, ToolRegistry, default_registry

app = typer.Typer(
    help=(
        "taskloom runs LLM agent programs written as YAML specs: a DAG of LLM calls and "
        "tool calls, checked before it runs, with independent calls in parallel.\n\n"
        "Start with:  taskloom validate specs/quickstart.yaml  then  "
        "taskloom run specs/quickstart.yaml"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(bench_app, name="bench")
console = Console(stderr=True)
T = TypeVar("T")


class ExitCode:
    OK = 0
    SPEC_ERROR = 1
    BAD_INPUT = 2
    RUN_FAILED = 3
    ENGINE_ERROR = 4
    BUDGET_EXCEEDED = EXIT_BUDGET_EXCEEDED
    CANCELLED = 130


SpecArg = Annotated[
    Path, typer.Argument(help="Path to a program spec (YAML).", show_default=False)
]
ToolsRootOpt = Annotated[
    Path,
    typer.Option("--tools-root", help="Directory that read_file and sqlite_query may read."),
]
AllowHostOpt = Annotated[
    list[str] | None,
    typer.Option("--allow-host", help="A host http_get may fetch from (repeatable)."),
]
AllowImportOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--allow-import",
        help="Trust this module (or package prefix) for `tool: module:function` "
        "(repeatable). Modules beside the spec are trusted; no other module is imported.",
    ),
]


def _registry(
    spec: Path, tools_root: Path, allow_host: list[str] | None, allow_import: list[str] | None
) -> ToolRegistry:
    """The built-in tools, plus `module:function` tools from modules beside the spec or
    named with --allow-import; exit 2 on a malformed --allow-import or --allow-host."""
    _check_allowed_hosts(allow_host or [])
    try:
        policy = ImportPolicy.beside(spec, allow_import or ())
    except ToolError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(ExitCode.BAD_INPUT) from None
    return default_registry(root=tools_root, allowed_hosts=allow_host or (), import_policy=policy)


def _check(spec: Path, tools: ToolRegistry, *, reach: bool = False, offline: bool = False
           ) -> TaskGraph:
    """Load and compile, or print located errors and exit 1. `reach`: list the tools of
    the spec's MCP servers and check against them (else they are checked at run time)."""
    try:
        program = load(spec)
        tools, notes = with_declared_servers(program, tools, reach=reach, offline=offline)
        for line in notes:
            typer.echo(line)
        return compile_program(program, tools)
    except (SpecError, SpecErrors) as exc:
        errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
        for error in errors:
            typer.echo(error.render(), err=True)
        raise typer.Exit(ExitCode.SPEC_ERROR) from None


def _refuse(message: str) -> NoReturn:
    """A bad option or input: one line on stderr, exit 2, before anything runs."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(ExitCode.BAD_INPUT)


def _check_allowed_hosts(hosts: list[str]) -> None:
    try:
        HostAllowList.of(hosts)
    except ValueError as exc:
        _refuse(f"--allow-host: {exc}")


def _check_run_options(
    timeout: float | None, backend: BackendName, base_url: str | None
) -> None:
    # nan compares false with everything, so `timeout <= 0` alone would let it through.
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        _refuse(f"--timeout must be a positive number of seconds, got {timeout}")
    try:
        check_base_url(backend, base_url)
    except BackendSettingsError as exc:
        _refuse(str(exc))


@app.command()
def validate(
    spec: SpecArg,
    tools_root: ToolsRootOpt = Path("."),
    allow_host: AllowHostOpt = None,
    allow_import: AllowImportOpt = None,
    offline: Annotated[bool, typer.Option(
        help="Skip the MCP servers that cannot be reached (and say so) instead of failing."
    )] = False,
) -> None:
    """Check a spec without running it.

    Exits 0 and prints a summary of the graph (nodes, edges, widest parallel level,
    critical path) and the tools of each MCP server it declares; on any error exits 1
    and prints FILE:LINE:COL: message, with a hint.
    """
    graph = _check(spec, _registry(spec, tools_root, allow_host, allow_import),
                   reach=True, offline=offline)
    typer.echo(f"{spec}: ok — {graph.program.name}")
    typer.echo(describe(graph.stats))


@app.command()
def run(
    spec: SpecArg,
    input: Annotated[
        list[str] | None,
        typer.Option("-i", "--input", help="KEY=VALUE (repeatable); VALUE is parsed as JSON "
                     "when it can be, e.g. -i n=3 -i 'cities=[\"Oslo\",\"Lima\"]'."),
    ] = None,
    inputs: Annotated[
        Path | None, typer.Option("--inputs", help="A JSON file with an object of inputs.")
    ] = None,
    backend: Annotated[
        BackendName, typer.Option(help="vllm: in-process engine; openai: an HTTP server "
                                  "(needs --base-url); sim: simulated engine, filler "
                                  "answers; scripted: answers 'ok' (a test double).")
    ] = BackendName.VLLM,
    model: Annotated[
        str | None,
        typer.Option(help="Model path or name. Default for vllm: the embedded SmolLM2-135M."),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Server URL for --backend openai, e.g. http://127.0.0.1:8000.")
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (run_id, status, outputs, nodes).")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(help="Cancel the run after this many seconds.")
    ] = None,
    save: Annotated[
        bool, typer.Option(
            help="Keep the run in the store, .taskloom/taskloom.db (or $TASKLOOM_HOME), "
            "node by node as nodes finish, so `taskloom resume` can continue it.")
    ] = True,
    tools_root: ToolsRootOpt = Path("."),
    allow_host: AllowHostOpt = None,
    allow_import: AllowImportOpt = None,
    verbose: Annotated[bool, typer.Option(help="Show the engine's own log lines.")] = False,
    policy: Annotated[
        str | None, typer.Option(
            help=f"Scheduling policy for the LLM calls: {DEFAULT_POLICY} (the default), "
            "atlas, fcfs, mlfq, ... Overrides the spec's own `policy:`.")
    ] = None,
    sample_slots: Annotated[
        int | None, typer.Option(
            min=1,
            help="Share this many sample slots among all self-consistency nodes of the "
            "run (an `n` > 1 vote, e.g. inside a map): each is admitted with the samples "
            "its stopping rule needs at once, and while the pool is crowded, certain "
            "answers stop early and hopeless ones are cut. Default: each node samples "
            "on its own.")
    ] = None,
    dtype: DtypeOpt = None,
    engine_urls: EngineUrlsOpt = None,
    ray: RayOpt = False,
    ray_address: RayAddressOpt = None,
    replicas: ReplicasOpt = None,
    budget: BudgetOpt = None,
    prices: PricesOpt = None,
    trace: TraceOpt = False,
) -> None:
    """Run a spec and print its outputs.

    Shows node progress live, then every node's status, time and tokens, then the
    outputs. Exit codes: 0 ok, 1 spec error, 2 bad inputs, 3 a node failed, 4 engine
    error, 5 budget exceeded, 130 cancelled (Ctrl-C or --timeout); nothing already
    computed is lost.
    """
    backend = BackendName(engines_backend(backend, base_url, engine_urls))
    _check_run_options(timeout, backend, base_url or first_url(engine_urls))
    on_ray = ray_options(ray, ray_address, replicas, engine_urls, base_url, backend)
    engine = with_ray(with_engines(engine_start(backend, dtype), engine_urls), on_ray)
    limits = budget_from_options(budget)
    tools = _registry(spec, tools_root, allow_host, allow_import)
    graph = _check(spec, tools)
    price_table = prices_from_option(prices, graph.program, model)
    if not verbose:
        # vLLM logs every engine setting at INFO; a person running a spec wants progress.
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    given = _parse_inputs(input or [], inputs)
    policy = policy or graph.program.policy or DEFAULT_POLICY
    try:
        check_policy(policy)
    except UnknownPolicy as exc:
        _refuse(str(exc))
    try:
        given = resolve_inputs(graph.program, given)  # before paying for an engine start
    except InputError as exc:
        _refuse(str(exc))
    store = RunStore() if save else None
    try:
        result = _unwrapped(
            _run_interruptibly, graph, given, backend.value, model, base_url, timeout,
            store, json_out, tools, policy, sample_slots, engine, limits, price_table,
            trace or None,
        )
    except BackendError as exc:
        typer.echo(f"engine error: {exc}", err=True)
        raise typer.Exit(ExitCode.ENGINE_ERROR) from None
    except (SpecError, SpecErrors, ToolError) as exc:  # found once its MCP servers opened
        typer.echo(str(exc), err=True)
        raise typer.Exit(ExitCode.SPEC_ERROR) from None
    if result is None:
        typer.echo("cancelled before the run started", err=True)
        raise typer.Exit(ExitCode.CANCELLED)
    if json_out:
        typer.echo(strict_json(run_result_json(result)))
    else:
        print_run_result(result, Console())
    raise typer.Exit(_exit_code(result))


def _unwrapped(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """anyio.run on asyncio, with an error raised inside a task group given back as
    itself rather than as an exception group."""
    try:
        return anyio.run(function, *args, backend="asyncio")
    except ExceptionGroup as group:
        raise root_cause(group) from None


def _exit_code(result: RunResult) -> int:
    if result.engines is not None and result.engines.every_engine_lost:
        return ExitCode.ENGINE_ERROR
    if result.status is RunStatus.SUCCEEDED:
        return ExitCode.OK
    if result.status is RunStatus.CANCELLED:
        return ExitCode.CANCELLED
    if result.status is RunStatus.BUDGET_EXCEEDED:
        return ExitCode.BUDGET_EXCEEDED
    return ExitCode.RUN_FAILED


async def _run_interruptibly(
    graph: TaskGraph,
    given: dict[str, Any],
    backend: str,
    model: str | None,
    base_url: str | None,
    timeout: float | None,
    store: RunStore | None,
    quiet: bool,
    tools: ToolRegistry,
    policy: str,
    sample_slots: int | None,
    engine: EngineStart,
    budget: Budget | None = None,
    prices: PriceTable | None = None,
    trace: bool | None = None,
) -> RunResult | None:
    """Run with Ctrl-C turned into a clean cancellation: in-flight engine requests are
    aborted and the partial result is returned rather than lost."""
    result: RunResult | None = None
    running = False
    async with anyio.create_task_group() as group:
        interrupted = anyio.Event()

        async def watch_signals() -> None:
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for _ in signals:
                    interrupted.set()
                    if not running:  # still starting the engine: just stop
                        group.cancel_scope.cancel()
                    return

        group.start_soon(watch_signals)
        progress = LiveProgress(graph.program, console, enabled=not quiet)
        with progress:
            progress.note(engine.note)
            async with Runtime.open(
                backend, model=model, base_url=base_url, tools=tools,
                store=store, policy=policy, sample_slots=sample_slots,
                budget=budget, prices=prices, trace=trace, **engine.options,
            ) as runtime:
                progress.note("running")
                running = True
                result = await _run_until_interrupted(
                    runtime, graph, given, timeout, progress, interrupted
                )
        group.cancel_scope.cancel()
    return result


async def _run_until_interrupted(
    runtime: Any,
    graph: TaskGraph,
    given: dict[str, Any],
    timeout: float | None,
    progress: LiveProgress,
    interrupted: anyio.Event,
) -> RunResult:
    result: RunResult = await runtime.run(
        graph.program, given, timeout=timeout, cancel=interrupted, on_event=progress.update
    )
    if interrupted.is_set() and result.status is RunStatus.CANCELLED:
        return result.with_status(RunStatus.CANCELLED, "cancelled by the user (Ctrl-C)")
    return result


def _parse_inputs(pairs: list[str], inputs_file: Path | None) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if inputs_file is not None:
        try:
            data = inputs_file.read_bytes()
        except OSError as exc:
            _refuse(f"cannot read --inputs {inputs_file}: {exc.strerror or exc}")
        try:
            given.update(decode_json_object(data, f"--inputs {inputs_file}"))
        except InputError as exc:
            _refuse(str(exc))
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            _refuse(f"-i expects KEY=VALUE, got '{pair}'")
        try:
            given[key] = decode_json_value(raw, f"-i {key}")
        except NotStrictJson:
            given[key] = raw  # plain text is a string input
        except InputError as exc:
            _refuse(str(exc))
    return given


@app.command()
def graph(
    spec: SpecArg,
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Where to write: .mmd (Mermaid), .dot, .svg or .png."),
    ],
    tools_root: ToolsRootOpt = Path("."),
    allow_host: AllowHostOpt = None,
    allow_import: AllowImportOpt = None,
) -> None:
    """Draw the program's DAG; the format follows the output file's extension."""
    task_graph = _check(spec, _registry(spec, tools_root, allow_host, allow_import))
    # A missing folder is refused, not created: a mistyped -o should not leave new
    # directories behind, just as a shell redirection into one does not.
    if not output.parent.is_dir():
        _refuse(f"cannot write {output}: the folder {output.parent} does not exist")
    try:
        write_graph(task_graph, output)
    except UnknownFormat as exc:
        _refuse(str(exc))
    except OSError as exc:
        _refuse(f"cannot write {output}: {exc.strerror or exc}")
    typer.echo(f"wrote {output}")


register_commands(app)  # serve, submit, runs, show, cancel, resume
app.command()(mcp)


def main() -> None:
    try:
        app()
    except TaskloomError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
