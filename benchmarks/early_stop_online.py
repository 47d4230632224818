"""Online part of `early_stop.py`: self-consistency queries on the simulated H100.

Queries arrive as a Poisson process. Each is a taskloom program with one `llm` node of
n samples (32 or 64) and `aggregate: vote`, run by the executor through a scheduler onto the
simulated engine (Llama 3 8B constants on one H100, virtual time). The simulated model's
answers and lengths come from the synthetic workload of the batch part: sample i of
question q answers what that question's recorded sample i says, after that many tokens.

Four systems:
- `baseline`: no early stopping; every query's n samples go to the engine at once (FCFS).
- `early-stop`: the certaindex rule; still all n at once, the rest aborted when settled.
- `early-stop+realloc`: the same rule, with a `CertaintyAllocator` (gang admission,
  certainty-driven widths and budgets, hopeless queries cut) in front of the same FCFS
  scheduler.
- `early-stop+realloc+plas`: the same allocator in front of the program-aware scheduler
  (PLAS: a program's calls ranked by the service it has had so far), closer to Dynasor's
  gang scheduling with a program-level priority than FCFS is.

Per system and rate: latency of each query (arrival to answer), accuracy, tokens.
Queries arrive for 60 simulated seconds (at least 60 queries), so that a system
running over its capacity builds a queue that the latency shows.

Two latency targets, both met when 90% of queries are within their deadline (Dynasor's
"P90 deadline attainment"):
- `absolute`: one deadline for every query (p90 latency within SLO_S);
- `difficulty-aware`, Dynasor's online definition: a query's deadline is
  scale x difficulty x base, difficulty 1 for questions that self-consistency at the
  cap always gets right, 3 for those it always gets wrong, 2 otherwise (an oracle of
  128 trial runs on each question's answer distribution). The tightest scale meeting
  90% attainment is the 90th percentile of latency / difficulty.

Each target is also reported as a ceiling: the baseline's target at the fixed rate over
what a system meets at LIGHT_RATE, where its queries barely overlap. There its latency is
the time its own samples take to settle, which no admission order or priority at the
fixed rate can undercut.
"""

from __future__ import annotations

import itertools
import random
import re
import time
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import Any

import anyio
from trio.testing import MockClock

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.backends.sim import H100_LLAMA3_8B, H100_LLAMA3_8B_ENGINE, SimBackend
from taskloom.orchestrator.certainty import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.certainty.replay import RecordedQuery
from taskloom.orchestrator.scheduler import FifoScheduler, ProgramAwareScheduler, Scheduler
from taskloom.program.models import Program
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry

# Sample slots of the allocator: the batch at which one decode step takes twice as long as
# a lone sequence's (111 on the H100 constants), the knee past which each added sample
# slows every running one more than it adds throughput. A sweep at 1.5 queries/s of 32
# samples (p90 latency 5.1 / 4.7 / 4.2 / 4.4 / 6.4 s at 32 / 64 / 96 / 128 / 256 slots)
# agreed: 256, where throughput flattens, was the slowest (the batch grows, each step slows).
SLOTS = round(H100_LLAMA3_8B.base_s / H100_LLAMA3_8B.decode_seq_s)
_QUESTION = re.compile(r"^Q(\d+):")


def program(samples: int, early_stop: dict[str, Any] | None) -> Program:
    node: dict[str, Any] = {
        "kind": "llm",
        "prompt": "Q{{ inputs.qid }}: " + "Solve the problem step by step. " * 12,
        "n": samples,
        "max_tokens": 4096,
        "temperature": 0.8,
        "aggregate": "vote",
        "answer": {"kind": "regex", "pattern": r"answer: (\S+)"},
    }
    if early_stop is not None:
        node["early_stop"] = early_stop
    return Program.model_validate(
        {"name": "sc", "inputs": {"qid": {"type": "integer"}}, "nodes": {"solve": node},
         "outputs": {"answer": "{{ solve.answer }}"}}
    )


def _where(request: GenerateRequest) -> tuple[int, int]:
    """(question, sample) of a node's sample call."""
    assert request.messages is not None
    match = _QUESTION.match(request.messages[-1].content)
    assert match is not None
    return int(match.group(1)), int(request.call_id.rsplit("/s", 1)[1])


class AnsweringSim:
    """The simulated engine, with each sample's last chunk saying its recorded answer."""

    name = "sim-answers"

    def __init__(self, sim: SimBackend, queries: Sequence[RecordedQuery]) -> None:
        self.sim = sim
        self.queries = queries

    def capacity(self) -> int:
        return self.sim.capacity()

    async def close(self) -> None:
        await self.sim.close()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        question, sample = _where(request)
        answer = self.queries[question].answers[sample]
        async with aclosing(self.sim.generate(request)) as stream:
            async for chunk in stream:
                yield replace(chunk, text=f" answer: {answer}") if chunk.finished else chunk


def output_length(queries: Sequence[RecordedQuery]) -> Callable[[GenerateRequest], int]:
    def length(request: GenerateRequest) -> int:
        question, sample = _where(request)
        return queries[question].lengths[sample]

    return length


@dataclass(frozen=True)
class System:
    name: str
    early_stop: dict[str, Any] | None
    reallocate: bool
    policy: str | None = None  # a ProgramAwareScheduler policy; None: FCFS

    def scheduler(self, backend: Backend) -> Scheduler:
        inner: Scheduler = (FifoScheduler(backend) if self.policy is None
                            else ProgramAwareScheduler([backend], self.policy))
        if not self.reallocate:
            return inner
        return CertaintyAwareScheduler(inner, CertaintyAllocator(SLOTS, crowded_budget=0.25))


RULE = {"rule": "certaindex", "threshold": 0.7, "first_check": 4}
SYSTEMS = [
    System("baseline", None, reallocate=False),
    System("early-stop", RULE, reallocate=False),
    System("early-stop+realloc", RULE, reallocate=True),
    System("early-stop+realloc+plas", RULE, reallocate=True, policy="plas"),
]


@dataclass(frozen=True)
class QueryRecord:
    qid: int
    latency_s: float  # arrival to answer, on the simulated clock
    correct: bool
    samples_used: int
    generated_tokens: int


async def _serve(
    system: System, rate: float, queries: Sequence[RecordedQuery], seed: int
) -> list[QueryRecord]:
    sim = SimBackend(H100_LLAMA3_8B_ENGINE, H100_LLAMA3_8B, output_tokens=output_length(queries))
    records: list[QueryRecord] = []
    spec = program(len(queries[0].answers), system.early_stop)
    async with sim:
        backend = AnsweringSim(sim, queries)
        runtime = Runtime(backend, scheduler=system.scheduler(backend), tools=ToolRegistry())

        async def one(qid: int) -> None:
            # Timed here rather than by RunResult.wall_s, which reads 0 for a run that
            # starts at simulated time 0.
            arrived = anyio.current_time()
            result = await runtime.run(spec, {"qid": qid})
            solve = result.nodes["solve"]
            assert result.error is None, result.error
            records.append(QueryRecord(
                qid, anyio.current_time() - arrived,
                solve.output["answer"] == queries[qid].correct,
                solve.output["samples_used"], solve.generated_tokens,
            ))

        arrivals = random.Random(seed)
        async with anyio.create_task_group() as group:
            for qid in range(len(queries)):
                group.start_soon(one, qid)
                await anyio.sleep(arrivals.expovariate(rate))
    return records


ARRIVALS_S = 60.0  # queries keep arriving this long, so that overload shows as a queue
MIN_QUERIES = 60


def serve(
    system: System,
    rate: float,
    queries: Sequence[RecordedQuery],
    difficulty: Sequence[int],
    seed: int = 5,
) -> dict[str, Any]:
    """Run one system at one rate on virtual time; summarize its queries."""
    started = time.monotonic()
    count = min(len(queries), max(MIN_QUERIES, round(rate * ARRIVALS_S)))

    async def main() -> list[QueryRecord]:
        return await _serve(system, rate, queries[:count], seed)

    records = anyio.run(main, backend="trio",
                        backend_options={"clock": MockClock(autojump_threshold=0)})
    latencies = sorted(r.latency_s for r in records)
    scaled = sorted(r.latency_s / difficulty[r.qid] for r in records)
    return {
        "system": system.name,
        "rate_qps": rate,
        "samples": len(queries[0].answers),
        "queries": len(records),
        "p50_s": round(_quantile(latencies, 0.5), 3),
        "p90_s": round(_quantile(latencies, 0.9), 3),
        "mean_s": round(sum(latencies) / len(latencies), 3),
        # The tightest difficulty-aware deadline (that of a difficulty-1 query) which
        # 90% of queries meet.
        "p90_per_difficulty_s": round(_quantile(scaled, 0.9), 3),
        "accuracy": round(sum(r.correct for r in records) / len(records), 4),
        "mean_samples": round(sum(r.samples_used for r in records) / len(records), 2),
        "generated_tokens": sum(r.generated_tokens for r in records),
        "wall_s": round(time.monotonic() - started, 1),
        "latencies_s": [round(x, 3) for x in latencies],
    }


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


# ---------------------------------------------------------------- sweep and summary

# Rates for queries of 32 samples; scaled by 32/n for queries of n samples.
# LIGHT_RATE: so light that queries barely overlap; what a system's latency is when no
# scheduling decision matters, which bounds how far any ordering can tighten a target.
LIGHT_RATE = 0.05
BASELINE_RATES = (LIGHT_RATE, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
FAST_RATES = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)


@dataclass(frozen=True)
class OnlineWorkload:
    queries: list[RecordedQuery]
    difficulty: list[int]  # Dynasor's difficulty factor of each query: 1, 2 or 3


def online_queries(count: int, samples: int, seed: int = 3) -> OnlineWorkload:
    """Synthetic questions with `samples` samples each; reasoning of ~160 tokens (median)."""
    from early_stop_batch import synthetic_questions

    questions = synthetic_questions(count, seed=seed)
    queries = [
        RecordedQuery(
            q.recorded.answers[:samples],
            tuple(max(8, n * 160 // 400) for n in q.recorded.lengths[:samples]),
            q.recorded.correct,
        )
        for q in questions
    ]
    rng = random.Random(seed)
    difficulty = [
        difficulty_factor(q.distribution, q.recorded.correct, samples, rng) for q in questions
    ]
    return OnlineWorkload(queries, difficulty)


def difficulty_factor(
    distribution: Sequence[tuple[str, float]],
    correct: str | None,
    samples: int,
    rng: random.Random,
    trials: int = 128,
) -> int:
    """Dynasor's oracle difficulty of a question: run self-consistency with `samples`
    samples `trials` times on fresh draws from the question's answer distribution;
    1 if the vote is always right, 3 if never, 2 otherwise."""
    names = [name for name, _ in distribution]
    weights = [p for _, p in distribution]
    right = 0
    for _ in range(trials):
        # Counter keeps first-seen order and max() returns the first of equal counts:
        # the same tie-break as VoteTally.leader.
        votes = Counter(rng.choices(names, weights, k=samples))
        right += max(votes, key=votes.__getitem__) == correct
    return 1 if right == trials else 3 if right == 0 else 2


def sweep(
    workload: OnlineWorkload, slo_s: float, max_rate_qps: float | None = None
) -> list[dict[str, Any]]:
    """Each system at rising rates (the baseline's rates included, so that every system
    is measured where the baseline is), until it has missed the target at two rates in a
    row: past that, more load only lengthens the queue. `max_rate_qps` (for queries of
    32 samples, scaled by 32/n like the rates) skips the rates above it: a shorter run,
    in which a system's highest rate may be a lower bound."""
    rows = []
    queries = workload.queries
    scale = 32 / len(queries[0].answers)
    for system in SYSTEMS:
        listed = BASELINE_RATES if system.early_stop is None else {*BASELINE_RATES, *FAST_RATES}
        rates = {round(rate * scale, 3) for rate in listed}
        if max_rate_qps is not None:
            rates = {rate for rate in rates if rate <= max_rate_qps * scale + 1e-9}
        misses = 0
        for rate in sorted(rates):
            if misses >= 2:
                break
            row = serve(system, rate, queries, workload.difficulty)
            rows.append(row)
            misses = misses + 1 if row["p90_s"] > slo_s else 0
            print(f"  {system.name:20s} {rate:5.2f} q/s  p90 {row['p90_s']:7.2f} s  "
                  f"p90/difficulty {row['p90_per_difficulty_s']:6.2f} s  "
                  f"acc {row['accuracy']:.3f}  samples {row['mean_samples']:5.2f}  "
                  f"({row['queries']} queries, {row['wall_s']} s wall)", flush=True)
    return rows


ABSOLUTE = "p90_s"
PER_DIFFICULTY = "p90_per_difficulty_s"


def _curve(
    rows: Sequence[dict[str, Any]], system: str, metric: str = ABSOLUTE
) -> list[tuple[float, float]]:
    """(rate, tightest target met) points of one system, by rate."""
    return sorted((r["rate_qps"], r[metric]) for r in rows if r["system"] == system)


def max_rate(
    rows: Sequence[dict[str, Any]], system: str, slo_s: float, metric: str = ABSOLUTE
) -> float:
    """The highest rate whose tightest target (p90 latency for `ABSOLUTE`) is within
    `slo_s`, interpolated linearly between the last tested rate that meets it and the
    first that does not."""
    points = _curve(rows, system, metric)
    if not points or points[0][1] > slo_s:
        return 0.0
    for (rate, p90), (next_rate, next_p90) in itertools.pairwise(points):
        if next_p90 > slo_s:
            return round(rate + (slo_s - p90) * (next_rate - rate) / (next_p90 - p90), 3)
    return points[-1][0]  # met at every tested rate: a lower bound


def p90_at(
    rows: Sequence[dict[str, Any]], system: str, rate: float, metric: str = ABSOLUTE
) -> float | None:
    """The tightest target a system meets at `rate`, interpolated between the tested
    rates around it."""
    points = _curve(rows, system, metric)
    for (low, low_p90), (high, high_p90) in itertools.pairwise(points):
        if low <= rate <= high:
            return round(low_p90 + (rate - low) * (high_p90 - low_p90) / (high - low), 3)
    return None


def _tightening(
    rows: Sequence[dict[str, Any]], base_rate: float, metric: str
) -> dict[str, Any]:
    """At `base_rate` (and at every rate the baseline was run at): the tightest target
    each system meets, and the baseline's divided by it. The ceiling divides the
    baseline's target at `base_rate` by what the system meets at the light rate, where
    its queries do not contend: no scheduling at `base_rate` can do better."""
    systems = [s.name for s in SYSTEMS]
    targets = {name: p90_at(rows, name, base_rate, metric) for name in systems}
    light_rate = min(r["rate_qps"] for r in rows)
    light = {name: p90_at(rows, name, light_rate, metric) for name in systems}
    return {
        "tightest_target_s": targets,
        "target_tightening": {n: _ratio(targets["baseline"], t) for n, t in targets.items()},
        "light_rate_qps": light_rate,
        "tightest_target_at_light_rate_s": light,
        "target_tightening_ceiling": {n: _ratio(targets["baseline"], t)
                                      for n, t in light.items()},
        "target_tightening_by_rate": {
            str(rate): {
                name: _ratio(p90_at(rows, "baseline", rate, metric),
                             p90_at(rows, name, rate, metric))
                for name in systems
            }
            for rate, _ in _curve(rows, "baseline", metric)
        },
    }


def summarize(
    rows: Sequence[dict[str, Any]], slo_s: float, difficulty: Sequence[int]
) -> dict[str, Any]:
    """Highest rate within the absolute target, per system. Then, at the highest rate
    the baseline sustains within it (the fixed rate), the tightest target each system
    meets relative to the baseline's: absolute, and difficulty-aware (Dynasor's)."""
    systems = [s.name for s in SYSTEMS]
    rates = {name: max_rate(rows, name, slo_s) for name in systems}
    base_rate = rates["baseline"]
    absolute = _tightening(rows, base_rate, ABSOLUTE)
    aware = _tightening(rows, base_rate, PER_DIFFICULTY)
    # The rate goal again under difficulty-aware deadlines, with the deadline unit the
    # baseline needs at the fixed rate.
    unit = aware["tightest_target_s"]["baseline"]
    aware_rates = {name: max_rate(rows, name, unit, PER_DIFFICULTY) if unit else None
                   for name in systems}
    return {
        "latency_target": f"p90 latency within {slo_s} s",
        "max_rate_qps": rates,
        # Met at every tested rate: the true highest rate lies above the last one tested.
        "max_rate_is_lower_bound": {name: _met_everywhere(rows, name, slo_s, ABSOLUTE)
                                    for name in systems},
        "rate_gain": {n: _ratio(r, base_rate) for n, r in rates.items()},
        "fixed_rate_qps": base_rate,
        "tightest_p90_target_s": absolute["tightest_target_s"],
        "target_tightening": absolute["target_tightening"],
        "target_tightening_by_rate": absolute["target_tightening_by_rate"],
        "light_rate_qps": absolute["light_rate_qps"],
        "tightest_p90_target_at_light_rate_s": absolute["tightest_target_at_light_rate_s"],
        "target_tightening_ceiling": absolute["target_tightening_ceiling"],
        "difficulty_aware": {
            "deadline": "scale x difficulty (1 always right, 2 variable, 3 never right) x "
                        "base; met when 90% of queries are within it",
            "difficulty_counts": {str(d): difficulty.count(d) for d in (1, 2, 3)},
            "tightest_deadline_per_difficulty_s": aware["tightest_target_s"],
            "target_tightening": aware["target_tightening"],
            "target_tightening_by_rate": aware["target_tightening_by_rate"],
            "tightest_deadline_per_difficulty_at_light_rate_s":
                aware["tightest_target_at_light_rate_s"],
            "target_tightening_ceiling": aware["target_tightening_ceiling"],
            "max_rate_qps_at_baseline_deadline": aware_rates,
            "max_rate_is_lower_bound": {
                name: bool(unit) and _met_everywhere(rows, name, unit, PER_DIFFICULTY)
                for name in systems
            },
            "rate_gain": {n: _ratio(r, aware_rates["baseline"])
                          for n, r in aware_rates.items()},
        },
    }


def _met_everywhere(
    rows: Sequence[dict[str, Any]], system: str, target_s: float, metric: str
) -> bool:
    points = _curve(rows, system, metric)
    return bool(points) and all(value <= target_s for _, value in points)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 2)


def plot_online(rows: Sequence[dict[str, Any]], summary: dict[str, Any], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(13, 5))
    panels = [
        (ABSOLUTE, "90th-percentile latency (s, simulated)", "absolute deadline",
         float(summary["latency_target"].split(" within ")[1].split()[0])),
        (PER_DIFFICULTY, "tightest deadline per difficulty unit (s, simulated)",
         "difficulty-aware deadline (Dynasor)", None),
    ]
    for axis, (metric, label, title, target) in zip(axes, panels, strict=True):
        for system in SYSTEMS:
            mine = sorted((r for r in rows if r["system"] == system.name),
                          key=lambda r: r["rate_qps"])
            axis.plot([r["rate_qps"] for r in mine], [r[metric] for r in mine], "o-",
                      label=system.name)
        if target is not None:
            axis.axhline(target, color="grey", linestyle="--", linewidth=0.8,
                         label="latency target")
        axis.axvline(summary["fixed_rate_qps"], color="grey", linestyle=":", linewidth=0.8,
                     label="fixed rate")
        axis.set_xlabel(f"query rate (queries/s), {rows[0]['samples']} samples each")
        axis.set_ylabel(label)
        axis.set_yscale("log")
        axis.set_title(f"{title}: 90% of queries within it")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("Self-consistency on a simulated H100 (Llama 3 8B)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
