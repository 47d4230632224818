"""The three workload generators, shaped like the paper's benchmarks.

- parallel-qa (ParallelQA): 2-4 independent lookups, then arithmetic on their results.
- comparison (HotpotQA comparison questions): two lookups, then a comparison.
- movie (Movie Recommendation): 8 independent lookups, then a choice.

Each task carries its reference plan and answer; the answer is computed from the
knowledge base, independently of any plan being run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from taskloom.bench.workloads.llmcompiler.knowledge import (
    Entity,
    KnowledgeBase,
    build_knowledge_base,
)
from taskloom.bench.workloads.llmcompiler.latency import ToolLatencies, default_latencies
from taskloom.bench.workloads.llmcompiler.tasks import WorkloadTask
from taskloom.bench.workloads.llmcompiler.tools import Preference, choose_option, make_tools
from taskloom.planners.base import Ref, Task
from taskloom.planners.plan_format import string_value
from taskloom.tools.builtin.calculator import calculator as evaluate
from taskloom.tools.registry import ToolRegistry

TOOL_NAMES = ("search", "calculator", "choose")


@dataclass(frozen=True)
class LLMCompilerWorkload:
    """A generated workload: its tasks, the knowledge base they read, and its tools."""

    name: str
    tasks: tuple[WorkloadTask, ...]
    kb: KnowledgeBase
    latencies: ToolLatencies = field(default_factory=default_latencies)

    def tools(self) -> ToolRegistry:
        return make_tools(self.kb, self.latencies)

    def with_choice_in_answer(self) -> LLMCompilerWorkload:
        """The same questions, with each closing `choose` call left to the model's answer."""
        return replace(self, tasks=tuple(task.with_choice_in_answer() for task in self.tasks))


Generator = Callable[[KnowledgeBase, random.Random, int], WorkloadTask]


def _lookups(entities: Sequence[Entity]) -> list[Task]:
    return [Task(i, "search", {"entity": e.name}) for i, e in enumerate(entities, 1)]


# ---------------------------------------------------------------- parallel-qa

_ARITHMETIC = (
    ("population", "What is the combined population of {names}?", "sum"),
    ("area_km2", "What is the average area in square kilometres of {names}?", "mean"),
    ("elevation_m", "What is the total elevation in metres of {names}, added together?", "sum"),
)


def parallel_qa_task(kb: KnowledgeBase, rng: random.Random, number: int) -> WorkloadTask:
    cities = rng.sample(kb.of_kind("city"), rng.randint(2, 4))
    field_name, template, how = rng.choice(_ARITHMETIC)
    total = " + ".join(f"${i}.{field_name}" for i in range(1, len(cities) + 1))
    expression = total if how == "sum" else f"({total}) / {len(cities)}"
    values = [c.facts[field_name] for c in cities]
    literal = " + ".join(str(v) for v in values)
    answer = evaluate(literal if how == "sum" else f"({literal}) / {len(cities)}")
    plan = (
        *_lookups(cities),
        Task(len(cities) + 1, "calculator", {"expression": string_value(expression)}),
    )
    return WorkloadTask(
        f"parallel-qa-{number}",
        "parallel-qa",
        template.format(names=_listing(cities)),
        plan,
        answer,
        "Look up every city at once, then compute.",
    )


# ---------------------------------------------------------------- comparison

_COMPARISONS: tuple[tuple[str, Preference, str], ...] = (
    ("height_m", "highest", "Which is taller, {a} or {b}?"),
    ("height_m", "lowest", "Which is shorter, {a} or {b}?"),
    ("opened", "lowest", "Which opened first, {a} or {b}?"),
)


def comparison_task(kb: KnowledgeBase, rng: random.Random, number: int) -> WorkloadTask:
    field_name, prefer, template = rng.choice(_COMPARISONS)
    first, second = _distinct_pair(kb.of_kind("tower"), field_name, rng)
    plan = (*_lookups([first, second]), _choose_task([first, second], field_name, prefer))
    answer = choose_option(
        [first.name, second.name], [first.facts[field_name], second.facts[field_name]], prefer
    )
    return WorkloadTask(
        f"comparison-{number}",
        "comparison",
        template.format(a=first.name, b=second.name),
        plan,
        answer,
        "Look up both towers, then compare them.",
    )


def _distinct_pair(pool: list[Entity], field_name: str, rng: random.Random) -> list[Entity]:
    while True:
        pair = rng.sample(pool, 2)
        if pair[0].facts[field_name] != pair[1].facts[field_name]:
            return pair


# ---------------------------------------------------------------- movie

# The paper's Movie Recommendation questions (BIG-bench, as LLMCompiler ships them) each
# name four movies a person liked and four options to choose from: eight searches before
# the answer. 495 of its 500 questions have that shape; the other five name five liked
# movies. So every question here looks up eight movies (the top of the 4-8 range).
MOVIE_LOOKUPS = 8

_MOVIE_CHOICES: tuple[tuple[str, Preference, str], ...] = (
    ("rating", "highest", "Which of these movies is the best rated: {names}?"),
    ("year", "lowest", "Which of these movies is the oldest: {names}?"),
    ("runtime_min", "lowest", "Which of these movies is the shortest: {names}?"),
)


def movie_task(kb: KnowledgeBase, rng: random.Random, number: int) -> WorkloadTask:
    field_name, prefer, template = rng.choice(_MOVIE_CHOICES)
    movies = _distinct_sample(kb.of_kind("movie"), field_name, MOVIE_LOOKUPS, rng)
    plan = (*_lookups(movies), _choose_task(movies, field_name, prefer))
    answer = choose_option([m.name for m in movies], [m.facts[field_name] for m in movies], prefer)
    return WorkloadTask(
        f"movie-{number}",
        "movie",
        template.format(names=_listing(movies)),
        plan,
        answer,
        "Look up every movie at once, then choose.",
    )


def _distinct_sample(
    pool: list[Entity], field_name: str, count: int, rng: random.Random
) -> list[Entity]:
    while True:
        sample = rng.sample(pool, count)
        if len({e.facts[field_name] for e in sample}) == count:
            return sample


# ---------------------------------------------------------------- shared


def _choose_task(entities: Sequence[Entity], field_name: str, prefer: Preference) -> Task:
    scores = [Ref(i, (field_name,)) for i in range(1, len(entities) + 1)]
    args = {"options": [e.name for e in entities], "scores": scores, "prefer": prefer}
    return Task(len(entities) + 1, "choose", args)


def _listing(entities: Sequence[Entity]) -> str:
    names = [e.name for e in entities]
    return ", ".join(names[:-1]) + f" and {names[-1]}"


GENERATORS: dict[str, Generator] = {
    "parallel-qa": parallel_qa_task,
    "comparison": comparison_task,
    "movie": movie_task,
}
WORKLOAD_NAMES = tuple(GENERATORS)


def build_llmcompiler_workload(
    name: str, count: int, seed: int = 0, latencies: ToolLatencies | None = None
) -> LLMCompilerWorkload:
    """`count` tasks of workload `name` ("parallel-qa", "comparison" or "movie")."""
    if name not in GENERATORS:
        raise ValueError(f"unknown workload '{name}'; one of: {', '.join(WORKLOAD_NAMES)}")
    kb = build_knowledge_base(seed)
    rng = random.Random(f"llmcompiler-{name}-{seed}")
    tasks = tuple(GENERATORS[name](kb, rng, number) for number in range(1, count + 1))
    return LLMCompilerWorkload(name, tasks, kb, latencies or default_latencies(seed))
