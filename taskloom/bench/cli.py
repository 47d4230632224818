"""`taskloom bench`: run a workload under several policies and rates; calibrate the sim.

`taskloom bench WORKLOAD ...` is short for `taskloom bench run WORKLOAD ...`.
Exit codes: 0 ok, 2 bad arguments (unknown workload or policy, a rate <= 0, a missing
data package), 4 engine error.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, NoReturn

import anyio
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

from taskloom.backends.factory import BackendName, open_backend
from taskloom.bench.autellix.points import ENGINES
from taskloom.bench.calibrate import (
    Calibration,
    CalibrationError,
    CalibrationPlan,
    calibrate,
    load_calibration,
    save_calibration,
)
from taskloom.bench.metrics import BenchRow, ProgramOutcome
from taskloom.bench.report import (
    plot_latency_vs_rate,
    print_engine_shares,
    print_results,
    write_results,
)
from taskloom.bench.runner import BenchConfig, BenchUsageError, SimSetup, run_benchmark
from taskloom.bench.scaling import ScalingPoint, engine_counts, run_scaling
from taskloom.bench.scaling_report import (
    SCALING_POINTS_FILE,
    plot_scaling,
    print_scaling,
    write_scaling,
)
from taskloom.bench.workloads import WORKLOAD_NAMES, WorkloadError, WorkloadOptions
from taskloom.cli_engine import DtypeOpt, engine_start
from taskloom.errors import BackendError
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.scheduler.registry import UnknownPolicy

USAGE_ERROR = 2
ENGINE_ERROR = 4

# The embedded CPU engine serves 2,048-token contexts; the simulator counts tokens a
# little differently from its tokenizer, so its workloads keep a margin.
EMBEDDED_CONTEXT_TOKENS = 1536
EMBEDDED_OUTPUT_TOKENS = 64
SIM_CONTEXT_TOKENS = 8192  # Llama 3 8B's context, the default simulated model
# Long agent sessions (coding-agent) run on the long-context version of the same model
# (Llama 3.1 8B, 128K); on the embedded engine they get its short context like the rest.
SIM_AGENT_CONTEXT_TOKENS = 131072

console = Console(stderr=True)


class _WorkloadByDefault(TyperGroup):
    """Reads `bench WORKLOAD ...` as `bench run WORKLOAD ...`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


bench_app = typer.Typer(
    cls=_WorkloadByDefault,
    help=(
        "Benchmark scheduling policies on agent workloads built from real traces.\n\n"
        f"Workloads: {', '.join(WORKLOAD_NAMES)}.  Example:  taskloom bench chat "
        "--policy fcfs --rate 1,2,4 --programs 200 -o results/"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@bench_app.command("run")
def run_command(
    workload: Annotated[str, typer.Argument(help=f"One of: {', '.join(WORKLOAD_NAMES)}.")],
    policy: Annotated[
        str, typer.Option(help="Scheduling policies, comma-separated (e.g. fcfs,plas).")
    ] = "fcfs",
    rate: Annotated[
        str, typer.Option(help="Arrival rates in programs/s, comma-separated (e.g. 0.5,1,2).")
    ] = "1",
    programs: Annotated[int, typer.Option(help="Programs per (policy, rate) point.")] = 100,
    backend: Annotated[
        BackendName | None,
        typer.Option(help="sim (default): simulated H100 on virtual time; vllm: in-process "
                     "engine; openai: an HTTP server (needs --base-url, or --engine URLs). "
                     "Not scripted."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Fixes the programs drawn and their arrivals.")] = 0,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for results.json and the plot.")
    ] = Path("results"),
    engines: Annotated[
        str,
        typer.Option(help="Engines behind the scheduler. Several counts, comma-separated "
                     "(e.g. 1,2,4,8), run a scale-out study on the sim: then --rate and "
                     "--programs are per engine, and OUT/scaling.json has one row per "
                     "count (the highest rate at the target latency, and the efficiency "
                     "against linear)."),
    ] = "1",
    sim_engine: Annotated[
        str | None,
        typer.Option(help=f"Simulated engine regime: {', '.join(ENGINES)} (default "
                     "h100: vLLM's defaults for Llama 3 8B on one H100)."),
    ] = None,
    target_latency: Annotated[
        float | None,
        typer.Option(help="Scale-out only: the target mean latency in seconds; default "
                     "twice the light-load mean on the fewest engines (lowest --rate)."),
    ] = None,
    stream_interval: Annotated[
        int | None,
        typer.Option(help="Tokens per streamed chunk on the sim; default: the coarsest "
                     "each policy allows with numbers unchanged."),
    ] = None,
    cost: Annotated[
        Path | None,
        typer.Option(help="Calibration JSON from `taskloom bench calibrate` (sim only)."),
    ] = None,
    max_context_tokens: Annotated[
        int | None,
        typer.Option(help=f"Prompt + answer limit per call; default {SIM_CONTEXT_TOKENS}, "
                     f"or {EMBEDDED_CONTEXT_TOKENS} on the embedded vllm engine."),
    ] = None,
    max_output_tokens: Annotated[
        int | None,
        typer.Option(help="Cap on each answer's trace length; default none, or "
                     f"{EMBEDDED_OUTPUT_TOKENS} on the embedded vllm engine."),
    ] = None,
    agent_context_tokens: Annotated[
        int | None,
        typer.Option(help="Prompt + answer limit per call of long agent sessions "
                     f"(coding-agent); default {SIM_AGENT_CONTEXT_TOKENS}, or "
                     f"{EMBEDDED_CONTEXT_TOKENS} on the embedded vllm engine."),
    ] = None,
    mixed_coding_agent: Annotated[
        bool,
        typer.Option(help="mixed: add coding-agent sessions as a fourth kind (off: "
                     "mixed's programs as before)."),
    ] = False,
    model: Annotated[str | None, typer.Option(help="Model for vllm/openai.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for openai.")] = None,
    engine_urls: Annotated[
        list[str] | None,
        typer.Option(
            "--engine",
            help="An OpenAI-compatible engine's URL (repeatable; implies --backend openai): "
            "the programs run on all of them, each call routed by the policy's balancer, "
            "every engine health-checked, a failed call resumed on another. results.json "
            "then has each engine's calls (calls_per_engine). Give --max-context-tokens "
            "to fit the served model.",
        ),
    ] = None,
    max_num_seqs: Annotated[
        int | None, typer.Option(help="Batch size of the vllm engine.")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run WORKLOAD for every (policy, rate); write OUT/results.json and a plot."""
    counts = _engine_counts(engines)
    chosen = _bench_backend(backend, engine_urls)
    if engine_urls and len(counts) > 1:
        _usage_error("--engines 1,2,... is a scale-out study of simulated engines; with "
                     "--engine URLs the engines are the URLs given")
    config = _config_or_exit(
        workload, policy, rate, programs, chosen, seed, counts[0],
        _workload_options(chosen, model, max_context_tokens, max_output_tokens,
                          agent_context_tokens, mixed_coding_agent),
        model, base_url, max_num_seqs, _sim_setup(chosen, cost, sim_engine, stream_interval),
    )
    config = replace(config, engine_urls=tuple(engine_urls or ()))
    if len(counts) > 1:
        _scale_out(config, counts, output, target_latency)
        return
    rows = _run_or_exit(config, progress)
    results = write_results(rows, output)
    plot = plot_latency_vs_rate(rows, output)
    print_results(rows)
    print_engine_shares(rows, console)
    console.print(f"wrote {results} and {plot}")


def _bench_backend(backend: BackendName | None, engine_urls: list[str] | None) -> BackendName:
    """sim unless told; openai when `--engine URL`s are given."""
    if not engine_urls:
        return backend or BackendName.SIM
    if backend not in (None, BackendName.OPENAI):
        _usage_error(f"--engine URLs are OpenAI-compatible servers; --backend {backend} has "
                     "none (leave --backend out)")
    return BackendName.OPENAI


def _workload_options(backend: BackendName, model: str | None, context: int | None,
                      output: int | None, agent_context: int | None = None,
                      mixed_coding_agent: bool = False) -> WorkloadOptions:
    embedded = backend is BackendName.VLLM and model is None
    default_context = EMBEDDED_CONTEXT_TOKENS if embedded else SIM_CONTEXT_TOKENS
    default_agent_context = EMBEDDED_CONTEXT_TOKENS if embedded else SIM_AGENT_CONTEXT_TOKENS
    try:
        return WorkloadOptions(
            max_context_tokens=context if context is not None else default_context,
            max_output_tokens=output if output is not None or not embedded
            else EMBEDDED_OUTPUT_TOKENS,
            agent_context_tokens=agent_context if agent_context is not None
            else default_agent_context,
            mixed_coding_agent=mixed_coding_agent,
        )
    except WorkloadError as error:
        _usage_error(str(error))


def _config_or_exit(
    workload: str, policy: str, rate: str, programs: int, backend: BackendName, seed: int,
    engines: int, options: WorkloadOptions, model: str | None, base_url: str | None,
    max_num_seqs: int | None, sim: SimSetup,
) -> BenchConfig:
    engine_options: dict[str, Any] = {}
    if max_num_seqs is not None:
        engine_options["max_num_seqs"] = max_num_seqs
    return BenchConfig(
        workload=workload,
        policies=_names(policy),
        rates=_rates(rate),
        programs=programs,
        seed=seed,
        backend=backend,
        engines=engines,
        options=options,
        sim=sim,
        model=model,
        base_url=base_url,
        engine_options=engine_options,
    )


def _names(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    if not names:
        _usage_error("--policy needs at least one name, e.g. --policy fcfs")
    return names


def _rates(text: str) -> tuple[float, ...]:
    rates: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            rates.append(float(part))
        except ValueError:
            _usage_error(f"--rate takes numbers separated by commas, got '{part}'")
    return tuple(rates)


def _engine_counts(text: str) -> tuple[int, ...]:
    try:
        return engine_counts(text)
    except BenchUsageError as error:
        _usage_error(str(error))


def _sim_setup(backend: BackendName, cost: Path | None, sim_engine: str | None,
               stream_interval: int | None) -> SimSetup:
    if cost is not None and backend is not BackendName.SIM:
        _usage_error("--cost calibrates the simulator; use it with --backend sim")
    if stream_interval is not None and stream_interval < 1:
        _usage_error(f"--stream-interval must be at least 1, got {stream_interval}")
    setup = SimSetup(stream_interval=stream_interval)
    if sim_engine is not None:
        if cost is not None:
            _usage_error("--cost brings its own engine; leave out --sim-engine")
        if sim_engine not in ENGINES:
            _usage_error(unknown_name_message("simulated engine", sim_engine, tuple(ENGINES)))
        setup = replace(setup, engine=ENGINES[sim_engine])
    if cost is None:
        return setup
    try:
        calibration = load_calibration(cost)
    except CalibrationError as error:
        _usage_error(str(error))
    return replace(setup, engine=calibration.engine, cost=calibration.cost)


def _scale_out(config: BenchConfig, counts: tuple[int, ...], output: Path,
               target_latency: float | None) -> None:
    partial = output / SCALING_POINTS_FILE
    output.mkdir(parents=True, exist_ok=True)
    partial.write_text("")

    def report(point: ScalingPoint) -> None:
        # Kept as each point ends, so a long study that is stopped keeps what it measured.
        with partial.open("a") as lines:
            lines.write(json.dumps(point.to_json()) + "\n")
        row, mean, router = point.row, point.steady_mean_latency_s, point.router_cpu_us_per_call
        console.print(f"{row.policy} x{row.engines} @ {row.rate:g}/s ({row.programs} "
                      f"programs): steady mean {'-' if mean is None else f'{mean:.1f}'} s, "
                      f"{row.failed_programs} failed, router "
                      f"{'-' if router is None else f'{router:.1f}'} CPU µs/call",
                      markup=False)

    try:
        result = run_scaling(config, counts, on_point_done=report,
                             target_latency_s=target_latency)
    except (BenchUsageError, UnknownPolicy, WorkloadError) as error:
        _usage_error(str(error))
    results = write_results([point.row for point in result.points], output)
    scaling = write_scaling(result, output)
    plot = plot_scaling(result, output)
    print_scaling(result)
    console.print(f"wrote {results}, {scaling} and {plot}")


def _run_or_exit(config: BenchConfig, show_progress: bool) -> list[BenchRow]:
    try:
        with _ProgressBar(config, enabled=show_progress) as bar:
            return run_benchmark(config, on_program_done=bar.advance)
    except (BenchUsageError, UnknownPolicy, WorkloadError) as error:
        _usage_error(str(error))
    except BackendError as error:
        console.print(f"engine error: {error}", markup=False)
        raise typer.Exit(ENGINE_ERROR) from None


class _ProgressBar:
    """One bar over every program of every point; the label names the current point."""

    def __init__(self, config: BenchConfig, *, enabled: bool) -> None:
        self._points = config.points
        self._programs = config.programs
        self._done = 0
        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, disable=not enabled, transient=True,
        )
        self._task = self._progress.add_task(
            self._label(), total=len(self._points) * config.programs
        )

    def __enter__(self) -> _ProgressBar:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._progress.__exit__(*exc_info)

    def advance(self, outcome: ProgramOutcome) -> None:
        self._done += 1
        self._progress.update(self._task, advance=1, description=self._label())

    def _label(self) -> str:
        index = min(self._done // self._programs, len(self._points) - 1)
        policy, rate = self._points[index]
        return f"{policy} @ {rate:g}/s"


@bench_app.command("calibrate")
def calibrate_command(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where to write the fitted constants (JSON).")
    ] = Path("calibration.json"),
    model: Annotated[
        str | None, typer.Option(help="Model folder; default: the embedded SmolLM2-135M.")
    ] = None,
    max_num_seqs: Annotated[int, typer.Option(help="Batch size of the engine.")] = 16,
    max_model_len: Annotated[int, typer.Option(help="Context length of the engine.")] = 2048,
    quick: Annotated[bool, typer.Option(help="Time fewer steps (a rougher fit).")] = False,
    dtype: DtypeOpt = None,
) -> None:
    """Time a real vLLM engine's steps and fit the simulator's cost model to them.

    Use the result with `taskloom bench WORKLOAD --backend sim --cost FILE`.
    """
    plan = CalibrationPlan.quick() if quick else CalibrationPlan()
    try:
        calibration: Calibration = anyio.run(
            _calibrate_embedded, model, max_num_seqs, max_model_len, plan, dtype,
            backend="asyncio",
        )
    except BackendError as error:
        console.print(f"engine error: {error}", markup=False)
        raise typer.Exit(ENGINE_ERROR) from None
    except CalibrationError as error:
        console.print(f"calibration failed: {error}", markup=False)
        raise typer.Exit(ENGINE_ERROR) from None
    save_calibration(calibration, output)
    Console().print(calibration_table(calibration))
    console.print(f"wrote {output}")


async def _calibrate_embedded(
    model: str | None, max_num_seqs: int, max_model_len: int, plan: CalibrationPlan,
    dtype: str | None,
) -> Calibration:
    start = engine_start(BackendName.VLLM, dtype)
    console.print(start.note)
    async with open_backend(BackendName.VLLM, model=model, max_num_seqs=max_num_seqs,
                            max_model_len=max_model_len, **start.options) as engine:
        console.print("timing engine steps…")
        return await calibrate(engine, plan, model=model or "embedded SmolLM2-135M-Instruct",
                               dtype=str(start.options["dtype"]))


def calibration_table(calibration: Calibration) -> Table:
    table = Table(title="fitted step cost (seconds)")
    for column in ("prefill tok", "decode seqs", "context tok", "measured s", "fitted s"):
        table.add_column(column, justify="right")
    for sample in calibration.samples:
        table.add_row(
            f"{sample.prefill_tokens:g}", f"{sample.decode_seqs:g}",
            f"{sample.context_tokens:g}", f"{sample.seconds:.4f}",
            f"{calibration.predict(sample):.4f}",
        )
    cost = calibration.cost
    table.caption = (
        f"base {cost.base_s:.4g} s + {cost.prefill_token_s:.3g} s/prefill token + "
        f"{cost.decode_seq_s:.3g} s/decode seq + {cost.context_token_s:.3g} s/context token"
    )
    return table


def _usage_error(message: str) -> NoReturn:
    console.print(f"error: {message}", markup=False)
    raise typer.Exit(USAGE_ERROR)
