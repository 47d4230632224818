"""Program-aware scheduling on the real embedded engine: fcfs against atlas, and exact
preemption.

One vLLM engine (the embedded SmolLM2-135M, CPU build) serves a small mixed set of agent
programs in several runs, one after another in this process:

- `reference`: one call at a time (fcfs, one call in flight), so no call is ever
  preempted or batched with another. It gives every call's reference answer and warms
  the engine's prefix cache for the runs that are compared;
- `fcfs`: the registry's `fcfs`, what a plain engine does: every call handed to the
  engine at once, in arrival order;
- `default`: the default policy exactly as `taskloom run` builds it (registry's
  `DEFAULT_POLICY`, default cap: at most the engine's capacity), the no-regret check:
  its mean latency must stay within the round-to-round noise of fcfs;
- `atlas@N`: program-aware ATLAS with at most N calls in flight (by default 2 and 4,
  far below the engine's 16), so calls wait in taskloom's queue and a call that ranks
  better preempts a running one (abort, then resume with the text so far). The levels
  are the defaults (1/4/16 s of service).

Decoding is greedy, so every run must give each call the reference's answer token for
token; the benchmark checks it and exits with status 1 if not. It reports each run's
mean and p95 program latency and each atlas/fcfs ratio. The compared runs alternate
their order over `--rounds` rounds so that a machine getting busier favours none.

The engine runs in float32 by default. In bfloat16 (the model's own dtype) vLLM's CPU
build rounds a prefill differently from step-by-step decoding, and a decode step
differently with another batch, and SmolLM2 often has near-tied greedy choices: for 8
chat prompts of 48 tokens, 5 answers took another token when the calls were resumed
after preemptions, and the same 5 when they merely ran in one batch with no scheduler at
all. In float32 none changed, batched or preempted; `--dtype bfloat16` shows the
difference on this workload.

    .venv/bin/python benchmarks/autellix_engine.py               # a few minutes on 2 cores
    .venv/bin/python benchmarks/autellix_engine.py --dtype bfloat16 --rounds 1

Writes results/autellix_engine.json (every program's latency, every call's answer, the
schedulers' counters) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.bench.metrics import percentile
from taskloom.bench.workloads import poisson_arrivals
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.orchestrator.result import RunStatus
from taskloom.orchestrator.scheduler import ProgramAwareScheduler, make_scheduler
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY
from taskloom.program.models import ChatMessage, Defaults, LLMNode, Program, ToolNode
from taskloom.runtime import Runtime

DEFAULT_OUT = Path("results/autellix_engine.json")

# ------------------------------------------------------------------ the workload

CHAT_TURNS = (
    ("Give me one tip for learning to cook.", "Why does that help?", "Sum it up in a line."),
    ("What should I pack for a hike?", "Which of those matters most?", "And if it rains?"),
    ("How do I start running?", "How often should I run?", "What shoes should I buy?"),
)
AGENT_TASKS = (
    "Find the weather in Paris and say whether to take an umbrella.",
    "Look up the price of a train ticket from Rome to Milan and compare it with a flight.",
    "Check a library's opening hours and plan a visit on Saturday.",
)
SEARCH_TASKS = (
    "Plan a three-day trip to Lisbon.",
    "Choose a name for a small bakery.",
    "Design a weekly study plan for a chemistry exam.",
)
SEARCH_ANGLES = ("the cheapest option", "the fastest option", "the most fun option")
TOOL_LATENCY_S = 0.3
TOOL_RESULT_TOKENS = 12


@dataclass(frozen=True)
class EngineProgram:
    kind: str
    program: Program
    inputs: dict[str, str]


def chat_program(turns: Sequence[str], max_tokens: int) -> EngineProgram:
    """A conversation: each turn's prompt holds every earlier question and answer."""
    nodes: dict[str, LLMNode | ToolNode] = {}
    history: list[ChatMessage] = []
    for index in range(len(turns)):
        history.append(ChatMessage(role="user", content=f"{{{{ inputs.q{index} }}}}"))
        nodes[f"turn_{index}"] = LLMNode(messages=list(history))
        history.append(ChatMessage(role="assistant", content=f"{{{{ turn_{index} }}}}"))
    return EngineProgram("chat", _program("chat", nodes, max_tokens, turns), _inputs(turns))


def agent_program(task: str, max_tokens: int) -> EngineProgram:
    """ReAct-like: think, call a tool, act on its result, call again, answer."""
    steps = ("Think about the first step.", "Act on the result.", "Give the answer.")
    nodes: dict[str, LLMNode | ToolNode] = {}
    history = [ChatMessage(role="user", content="{{ inputs.q0 }}")]
    for index, step in enumerate(steps):
        history.append(ChatMessage(role="user", content=step))
        nodes[f"step_{index}"] = LLMNode(messages=list(history))
        history.append(ChatMessage(role="assistant", content=f"{{{{ step_{index} }}}}"))
        if index < len(steps) - 1:
            nodes[f"tool_{index}"] = ToolNode(
                tool="simulated_call", after=[f"step_{index}"],
                args={"function": "lookup", "latency_s": TOOL_LATENCY_S,
                      "result_tokens": TOOL_RESULT_TOKENS},
            )
            history.append(ChatMessage(role="user", content=f"{{{{ tool_{index} }}}}"))
    return EngineProgram("agent", _program("agent", nodes, max_tokens, (task,)), _inputs((task,)))


def search_program(task: str, max_tokens: int) -> EngineProgram:
    """Tree-search-like: one expansion, parallel evaluations sharing it, one answer."""
    task_message = ChatMessage(role="user", content="{{ inputs.q0 }}")
    expand = ChatMessage(role="assistant", content="{{ expand }}")
    nodes: dict[str, LLMNode | ToolNode] = {"expand": LLMNode(messages=[task_message])}
    for index, angle in enumerate(SEARCH_ANGLES):
        ask = ChatMessage(role="user", content=f"Evaluate that plan as {angle}.")
        nodes[f"eval_{index}"] = LLMNode(messages=[task_message, expand, ask])
    evaluations = "\n".join(f"{{{{ eval_{i} }}}}" for i in range(len(SEARCH_ANGLES)))
    final = ChatMessage(role="user", content=f"Reviews:\n{evaluations}\nGive the best plan.")
    nodes["answer"] = LLMNode(messages=[task_message, expand, final])
    return EngineProgram("search", _program("search", nodes, max_tokens, (task,)),
                         _inputs((task,)))


def _program(name: str, nodes: dict[str, LLMNode | ToolNode], max_tokens: int,
             questions: Sequence[str]) -> Program:
    return Program(
        name=name,
        inputs={f"q{i}": {"type": "string"} for i in range(len(questions))},
        nodes=nodes,
        defaults=Defaults(max_tokens=max_tokens, temperature=0.0),
    )


def _inputs(questions: Sequence[str]) -> dict[str, str]:
    return {f"q{i}": question for i, question in enumerate(questions)}


def mixed_programs(count: int, max_tokens: int) -> list[EngineProgram]:
    """`count` programs, the three kinds in turn (chat, agent, search, chat, ...)."""
    programs: list[EngineProgram] = []
    for index in range(count):
        kind, nth = index % 3, index // 3
        if kind == 0:
            programs.append(chat_program(CHAT_TURNS[nth % len(CHAT_TURNS)], max_tokens))
        elif kind == 1:
            programs.append(agent_program(AGENT_TASKS[nth % len(AGENT_TASKS)], max_tokens))
        else:
            programs.append(search_program(SEARCH_TASKS[nth % len(SEARCH_TASKS)], max_tokens))
    return programs


# ------------------------------------------------------------------ one run


@dataclass(frozen=True)
class CallRecord:
    text: str
    generated_tokens: int
    finish_reason: str | None


@dataclass
class RecordingScheduler:
    """Passes calls to a program-aware scheduler and keeps every call's whole answer."""

    inner: ProgramAwareScheduler
    calls: dict[str, CallRecord] = field(default_factory=dict)

    async def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        parts: list[str] = []
        last = Chunk(text="")
        async with aclosing(self.inner.submit(request)) as stream:
            async for chunk in stream:
                parts.append(chunk.text)
                last = chunk
                yield chunk
        self.calls[request.call_id] = CallRecord("".join(parts), last.generated_tokens,
                                                 last.finish_reason)

    async def close(self) -> None:
        """The engine is shared by every run; the benchmark closes it at the end."""


@dataclass(frozen=True)
class ProgramLatency:
    index: int
    kind: str
    arrival_s: float
    latency_s: float
    status: str


@dataclass(frozen=True)
class RunReport:
    name: str
    policy: str
    max_in_flight: int
    round: int
    wall_s: float
    programs: list[ProgramLatency]
    calls: dict[str, CallRecord]
    preemptions: int
    demotions: int
    promotions: int
    prefix_cache_hit_rate: float

    @property
    def latencies(self) -> list[float]:
        return sorted(p.latency_s for p in self.programs)

    @property
    def mean_latency_s(self) -> float:
        return statistics.fmean(self.latencies)

    @property
    def p95_latency_s(self) -> float:
        value = percentile(self.latencies, 95)
        assert value is not None
        return value


def atlas_name(cap: int) -> str:
    return f"atlas@{cap}"


DEFAULT_VARIANT = "default"


def variant_names(args: argparse.Namespace) -> list[str]:
    """The compared runs: fcfs first (the baseline), the default policy, then atlas@N."""
    return ["fcfs", DEFAULT_VARIANT, *map(atlas_name, args.atlas_caps)]


def scheduler_for(name: str, engine: Backend) -> tuple[ProgramAwareScheduler, int]:
    """The run's scheduler and its per-engine cap on calls in flight."""
    if name == "reference":
        return ProgramAwareScheduler([engine], "fcfs", max_in_flight=1), 1
    if name in ("fcfs", DEFAULT_VARIANT):
        # Exactly what `taskloom run --policy fcfs` / a plain `taskloom run` builds.
        scheduler = make_scheduler("fcfs" if name == "fcfs" else DEFAULT_POLICY, [engine])
        assert isinstance(scheduler, ProgramAwareScheduler)
        return scheduler, scheduler.engine_caps()[0]
    # atlas@N: the default levels (1/4/16 s of service); only the cap is smaller than
    # a user's.
    cap = min(int(name.removeprefix("atlas@")), engine.capacity())
    return ProgramAwareScheduler([engine], "atlas", queues=QueueConfig(), max_in_flight=cap), cap


async def run_once(name: str, round_: int, engine: Backend, programs: Sequence[EngineProgram],
                   arrivals: Sequence[float]) -> RunReport:
    inner, cap = scheduler_for(name, engine)
    scheduler = RecordingScheduler(inner)
    runtime = Runtime(engine, tools=workload_tools(), scheduler=scheduler)
    latencies: list[ProgramLatency] = []
    start = anyio.current_time()

    async def one(index: int, program: EngineProgram, arrival: float) -> None:
        await anyio.sleep_until(start + arrival)
        arrived = anyio.current_time()
        result = await runtime.run(program.program, program.inputs, run_id=f"p{index:02d}")
        latencies.append(ProgramLatency(index, program.kind, arrived - start,
                                        anyio.current_time() - arrived, str(result.status)))
        if result.status is not RunStatus.SUCCEEDED:
            raise RuntimeError(f"{name}: program p{index:02d} ended {result.status}: "
                               f"{result.error}")

    async with anyio.create_task_group() as group:
        for index, (program, arrival) in enumerate(zip(programs, arrivals, strict=True)):
            group.start_soon(one, index, program, arrival)
    stats = inner.stats()
    return RunReport(
        name=name, policy=inner.policy.name, max_in_flight=cap, round=round_,
        wall_s=anyio.current_time() - start,
        programs=sorted(latencies, key=lambda p: p.index), calls=dict(scheduler.calls),
        preemptions=stats.preemptions, demotions=stats.demotions, promotions=stats.promotions,
        prefix_cache_hit_rate=stats.prefix_cache_hit_rate,
    )


# ------------------------------------------------------------------ comparing answers


@dataclass(frozen=True)
class Mismatch:
    call_id: str
    first_difference: int  # character offset where the answers part
    reference: str
    answer: str


def mismatches(reference: RunReport, run: RunReport) -> list[Mismatch]:
    """Calls whose answer (text and token count) is not the reference's."""
    found: list[Mismatch] = []
    for call_id in sorted(set(reference.calls) | set(run.calls)):
        want, got = reference.calls.get(call_id), run.calls.get(call_id)
        if want is not None and got is not None and (
            (want.text, want.generated_tokens) == (got.text, got.generated_tokens)
        ):
            continue
        want_text = want.text if want is not None else "<no such call>"
        got_text = got.text if got is not None else "<no such call>"
        found.append(Mismatch(call_id, _first_difference(want_text, got_text), want_text,
                              got_text))
    return found


def _first_difference(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                min(len(a), len(b)))


# ------------------------------------------------------------------ the benchmark


async def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    from taskloom.backends.factory import open_backend

    programs = mixed_programs(args.programs, args.max_tokens)
    arrivals = poisson_arrivals(args.rate, len(programs), args.seed)
    started = time.monotonic()
    runs: list[RunReport] = []
    async with open_backend("vllm", max_num_seqs=args.max_num_seqs,
                            dtype=args.dtype) as engine:
        _say(f"engine ({args.dtype}) started in {time.monotonic() - started:.0f} s")
        reference = await run_once("reference", 0, engine, programs, arrivals)
        _say(_progress(reference))
        names = variant_names(args)
        for round_ in range(args.rounds):
            # Alternate the order, so that a machine growing busier favours none.
            for name in names if round_ % 2 == 0 else reversed(names):
                run = await run_once(name, round_, engine, programs, arrivals)
                _say(_progress(run))
                runs.append(run)
    return report(args, programs, arrivals, reference, runs)


def report(args: argparse.Namespace, programs: Sequence[EngineProgram],
           arrivals: Sequence[float], reference: RunReport,
           runs: Sequence[RunReport]) -> dict[str, Any]:
    names = variant_names(args)
    by_name = {name: [run for run in runs if run.name == name] for name in names}
    summary = {name: _pooled(group, reference) for name, group in by_name.items()}
    fcfs = summary["fcfs"]
    ratios = {
        name: {
            "mean": summary[name]["mean_latency_s"] / fcfs["mean_latency_s"],
            "p95": summary[name]["p95_latency_s"] / fcfs["p95_latency_s"],
            "mean_per_round": [
                other.mean_latency_s / plain.mean_latency_s
                for plain, other in zip(by_name["fcfs"], by_name[name], strict=True)
            ],
        }
        for name in names[1:]
    }
    fcfs_rounds = [run.mean_latency_s for run in by_name["fcfs"]]
    # The noise: how far fcfs's own mean latency moves from round to round on this
    # machine (relative standard deviation of its per-round means).
    noise = (statistics.stdev(fcfs_rounds) / statistics.fmean(fcfs_rounds)
             if len(fcfs_rounds) > 1 else None)
    return {
        "setup": {
            "model": "SmolLM2-135M-Instruct (embedded), vLLM CPU build",
            "dtype": args.dtype,
            "programs": [p.kind for p in programs],
            "llm_calls": len(reference.calls),
            "arrivals_s": list(arrivals),
            "rate": args.rate,
            "seed": args.seed,
            "max_tokens": args.max_tokens,
            "temperature": 0.0,
            "engine_max_num_seqs": args.max_num_seqs,
            "default_policy": DEFAULT_POLICY,
            "atlas_max_in_flight": [min(cap, args.max_num_seqs) for cap in args.atlas_caps],
            "rounds": args.rounds,
        },
        "summary": summary,
        "over_fcfs": ratios,
        "fcfs_round_to_round_noise": noise,
        "default_within_noise": (
            None if noise is None or DEFAULT_VARIANT not in ratios
            else abs(ratios[DEFAULT_VARIANT]["mean"] - 1.0) <= 2 * noise
        ),
        "reference": _run_json(reference, reference),
        "runs": [_run_json(run, reference) for run in runs],
    }


def _pooled(group: Sequence[RunReport], reference: RunReport) -> dict[str, Any]:
    latencies = sorted(latency for run in group for latency in run.latencies)
    kinds = sorted({p.kind for run in group for p in run.programs})
    return {
        "runs": len(group),
        "mean_latency_s": statistics.fmean(latencies),
        "p95_latency_s": percentile(latencies, 95),
        "mean_latency_by_kind_s": {
            kind: statistics.fmean(p.latency_s for run in group for p in run.programs
                                   if p.kind == kind)
            for kind in kinds
        },
        "preemptions": sum(run.preemptions for run in group),
        "calls_differing_from_reference": sum(len(mismatches(reference, run)) for run in group),
    }


def _run_json(run: RunReport, reference: RunReport) -> dict[str, Any]:
    return {
        "name": run.name,
        "policy": run.policy,
        "max_in_flight": run.max_in_flight,
        "round": run.round,
        "wall_s": run.wall_s,
        "mean_latency_s": run.mean_latency_s,
        "p95_latency_s": run.p95_latency_s,
        "preemptions": run.preemptions,
        "demotions": run.demotions,
        "promotions": run.promotions,
        "prefix_cache_hit_rate": run.prefix_cache_hit_rate,
        "programs": [asdict(p) for p in run.programs],
        "calls": {call_id: asdict(call) for call_id, call in sorted(run.calls.items())},
        "mismatches": [asdict(m) for m in mismatches(reference, run)],
    }


def _progress(run: RunReport) -> str:
    return (f"{run.name:9s} round {run.round}: mean {run.mean_latency_s:6.2f} s, "
            f"p95 {run.p95_latency_s:6.2f} s, {run.preemptions} preemptions, "
            f"wall {run.wall_s:.0f} s")


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def print_table(result: dict[str, Any]) -> None:
    setup, summary = result["setup"], result["summary"]
    calls = setup["llm_calls"]
    print(f"\n{len(setup['programs'])} programs ({', '.join(setup['programs'])}), "
          f"{calls} LLM calls, max_tokens {setup['max_tokens']}, greedy, {setup['dtype']}, "
          f"{setup['rounds']} round(s)")
    header = (f"{'run':10s} {'cap':>4s} {'mean s':>8s} {'p95 s':>8s} {'preempt':>8s} "
              f"{'same as reference':>18s}")
    print(header)
    print("-" * len(header))
    ref = result["reference"]
    print(f"{'reference':10s} {ref['max_in_flight']:>4d} {ref['mean_latency_s']:>8.2f} "
          f"{ref['p95_latency_s']:>8.2f} {ref['preemptions']:>8d} {'-':>18s}")
    for run in result["runs"]:
        same = calls - len(run["mismatches"])
        print(f"{run['name'] + ' #' + str(run['round']):10s} {run['max_in_flight']:>4d} "
              f"{run['mean_latency_s']:>8.2f} {run['p95_latency_s']:>8.2f} "
              f"{run['preemptions']:>8d} {f'{same}/{calls}':>18s}")
    print()
    for name, ratio in result["over_fcfs"].items():
        print(f"{name}/fcfs latency: mean {ratio['mean']:.2f}x, p95 {ratio['p95']:.2f}x "
              f"(pooled over rounds; mean per round "
              f"{', '.join(f'{r:.2f}x' for r in ratio['mean_per_round'])})")
    noise = result["fcfs_round_to_round_noise"]
    if noise is not None:
        print(f"fcfs round-to-round noise (relative stdev of its round means): {noise:.1%}; "
              f"default within 2x that of fcfs: {result['default_within_noise']}")
    for name in summary:
        kinds = ", ".join(f"{k} {v:.2f} s" for k, v in
                          summary[name]["mean_latency_by_kind_s"].items())
        print(f"  {name}: mean by kind: {kinds}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Runs one embedded vLLM engine; takes a few minutes on 2 CPU cores.",
    )
    parser.add_argument("--programs", type=int, default=6,
                        help="programs per run, chat/agent/search in turn (default 6)")
    parser.add_argument("--max-tokens", type=int, default=24,
                        help="max_tokens of every call (default 24)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="Poisson arrival rate, programs/s (default 1.0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the arrivals")
    parser.add_argument("--atlas-caps", type=_caps, default=(2, 4),
                        help="atlas runs, by their calls in flight on the engine (default 2,4; "
                        "'none' compares only fcfs and the default policy)")
    parser.add_argument("--max-num-seqs", type=int, default=16,
                        help="the engine's batch limit, fcfs's cap (default 16)")
    parser.add_argument("--rounds", type=int, default=4,
                        help="runs of fcfs and of each atlas cap, alternating order (default 4)")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                        help="the engine's dtype (default float32; see the module doc)")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT,
                        help=f"JSON output (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.programs < 1 or args.max_tokens < 1 or args.rounds < 1:
        parser.error("--programs, --max-tokens and --rounds must be at least 1")
    return args


def _caps(text: str) -> tuple[int, ...]:
    if text.strip() == "none":
        return ()
    caps = tuple(int(part) for part in text.split(",") if part.strip())
    if not caps or any(cap < 1 for cap in caps):
        raise argparse.ArgumentTypeError(f"give caps of at least 1, like 2,4; got {text!r}")
    return caps


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = anyio.run(run_benchmark, args, backend="asyncio")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"\nwrote {args.out}")
    differing = {name: s["calls_differing_from_reference"]
                 for name, s in result["summary"].items()}
    if any(differing.values()):
        print(f"answers differ from the one-call-at-a-time reference: {differing} "
              f"(see 'mismatches' in the JSON)")
        return 1
    if not args.atlas_caps:  # only fcfs and the default policy: nothing must preempt
        return 0
    smallest = atlas_name(min(args.atlas_caps))
    if not result["summary"][smallest]["preemptions"]:
        print(f"{smallest} never preempted: lower --atlas-caps or raise --rate")
        return 1
    return 0


if __name__ == "__main__":  # vLLM starts its engine process with spawn
    sys.exit(main())
