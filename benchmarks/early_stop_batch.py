"""Batch part of `early_stop.py`: replay recorded and synthetic samples under each rule.

Two workloads of 64 samples per question:
- `recorded`: real samples of the embedded model (benchmarks/data/arith_samples.jsonl,
  written by benchmarks/record_samples.py);
- `synthetic`: 1,000 questions drawn from a difficulty mixture (see `MIXTURE`).

Each question is replayed under each rule and threshold (taskloom's `replay`, which
runs `width` samples at a time as `vote` does and counts the partial tokens of aborted
samples). Baseline: always all 64 samples, majority vote. Reported: generated tokens
saved and accuracy change (points) against the baseline.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from taskloom.orchestrator.certainty import (
    BetaRule,
    CertaindexRule,
    DirichletRule,
    NeverStop,
    StoppingRule,
)
from taskloom.orchestrator.certainty.answers import RegexAnswer
from taskloom.orchestrator.certainty.replay import HopelessCut, RecordedQuery, replay

RECORDED = Path(__file__).parent / "data" / "arith_samples.jsonl"
SAMPLES = 64
# The recorded completions continue "a + b =": the answer is the number they start with.
FIRST_NUMBER = RegexAnswer(re.compile(r"^\s*(-?\d+)"))


def load_recorded(path: Path = RECORDED) -> list[RecordedQuery]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [
        RecordedQuery(
            tuple(FIRST_NUMBER(text) for text in row["texts"]),
            tuple(max(1, tokens) for tokens in row["tokens"]),
            row["answer"],
        )
        for row in rows
        if row.get("kind") != "header"
    ]


# ---------------------------------------------------------------- synthetic workload

# (share of questions, top-answer probability range, chance the top answer is right,
#  how many other answers share the rest). The spread follows what Dynasor describes
# for self-consistency: most queries settle within a few samples, a minority stays
# split between two or three answers, and a tail never converges. The numbers are this
# benchmark's assumption, not data from the paper.
Band = tuple[str, float, tuple[float, float], float, tuple[int, int]]
MIXTURE: list[Band] = [
    ("easy", 0.50, (0.75, 0.98), 0.95, (1, 3)),
    ("medium", 0.25, (0.40, 0.75), 0.75, (2, 4)),
    ("hard", 0.10, (0.20, 0.40), 0.45, (4, 10)),
    ("hopeless", 0.15, (0.04, 0.15), 0.10, (15, 40)),
]
MEDIAN_TOKENS = 400


@dataclass(frozen=True)
class SyntheticQuestion:
    """A synthetic question: the answer distribution its samples are drawn from, and
    the samples drawn. The distribution is what an oracle knows about the question."""

    distribution: tuple[tuple[str, float], ...]  # (answer, probability)
    recorded: RecordedQuery


def synthetic_questions(count: int = 1000, seed: int = 11) -> list[SyntheticQuestion]:
    rng = random.Random(seed)
    return [_synthetic_question(rng, _pick_band(rng)) for _ in range(count)]


def synthetic_queries(count: int = 1000, seed: int = 11) -> list[RecordedQuery]:
    return [question.recorded for question in synthetic_questions(count, seed)]


def _pick_band(rng: random.Random) -> Band:
    roll, total = rng.random(), 0.0
    for band in MIXTURE:
        total += band[1]
        if roll < total:
            return band
    return MIXTURE[-1]


def _synthetic_question(rng: random.Random, band: Band) -> SyntheticQuestion:
    _, _, top_range, top_right, others_range = band
    top = rng.uniform(*top_range)
    others = rng.randint(*others_range)
    # The rest of the mass over the other answers, unevenly (a Dirichlet(1) split).
    weights = [rng.expovariate(1.0) for _ in range(others)]
    rest = [(1 - top) * w / sum(weights) for w in weights]
    probabilities = [top, *rest]
    names = [f"x{i}" for i in range(len(probabilities))]
    correct = names[0] if rng.random() < top_right else _wrong_or_absent(rng, names)
    answers = tuple(rng.choices(names, probabilities, k=SAMPLES))
    lengths = tuple(max(8, round(rng.lognormvariate(math.log(MEDIAN_TOKENS), 0.4)))
                    for _ in range(SAMPLES))
    return SyntheticQuestion(tuple(zip(names, probabilities, strict=True)),
                             RecordedQuery(answers, lengths, correct))


def _wrong_or_absent(rng: random.Random, names: Sequence[str]) -> str:
    # When the top answer is wrong, the right one is the runner-up half of the time
    # and an answer the model (almost) never gives otherwise.
    return names[1] if len(names) > 1 and rng.random() < 0.5 else "never"


# ---------------------------------------------------------------- replay and score


@dataclass(frozen=True)
class Config:
    rule: str
    setting: float
    make: Callable[[], StoppingRule]
    hopeless: HopelessCut | None = None


def configs() -> list[Config]:
    found: list[Config] = []
    for threshold in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        certaindex = partial(CertaindexRule, threshold, 4)
        found.append(Config("certaindex", threshold, certaindex))
        found.append(Config("certaindex+hopeless", threshold, certaindex, HopelessCut(16)))
    for confidence in (0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
        found.append(Config("beta", confidence, partial(BetaRule, confidence)))
        found.append(Config("dirichlet", confidence, partial(DirichletRule, confidence)))
    return found


def score(
    queries: Sequence[RecordedQuery], config: Config, width: int, baseline: dict[str, float]
) -> dict[str, Any]:
    rule = config.make()
    outcomes = [replay(q, rule, width=width, hopeless=config.hopeless) for q in queries]
    tokens = sum(o.tokens for o in outcomes)
    correct = sum(o.answer == q.correct for o, q in zip(outcomes, queries, strict=True))
    accuracy = correct / len(queries)
    return {
        "rule": config.rule,
        "setting": config.setting,
        "width": width,
        "accuracy": round(accuracy, 4),
        "accuracy_change_points": round(100 * (accuracy - baseline["accuracy"]), 2),
        "tokens": tokens,
        "tokens_saved": round(1 - tokens / baseline["tokens"], 4),
        "mean_samples": round(sum(o.samples_used for o in outcomes) / len(queries), 2),
        "hopeless_stops": sum(o.stop_reason == "hopeless" for o in outcomes),
    }


def take_all(queries: Sequence[RecordedQuery]) -> dict[str, float]:
    outcomes = [replay(q, NeverStop(), width=SAMPLES) for q in queries]
    correct = sum(o.answer == q.correct for o, q in zip(outcomes, queries, strict=True))
    return {"accuracy": correct / len(queries), "tokens": sum(o.tokens for o in outcomes)}


def best_within(rows: Sequence[dict[str, Any]], max_loss_points: float = 1.0) -> dict[str, Any]:
    """The row saving the most tokens while losing at most `max_loss_points`."""
    allowed = [r for r in rows if r["accuracy_change_points"] >= -max_loss_points]
    return max(allowed, key=lambda r: r["tokens_saved"])


def run_batch(widths: Sequence[int] = (1, 4, 16)) -> dict[str, Any]:
    workloads = {"recorded": load_recorded(), "synthetic": synthetic_queries()}
    report: dict[str, Any] = {"samples_per_question": SAMPLES, "mixture": _mixture_doc()}
    for name, queries in workloads.items():
        baseline = take_all(queries)
        rows = [score(queries, c, w, baseline) for w in widths for c in configs()]
        report[name] = {
            "questions": len(queries),
            "baseline_all_samples": baseline,
            "rows": rows,
            "best_within_1_point": {w: best_within([r for r in rows if r["width"] == w])
                                    for w in widths},
        }
    return report


def _mixture_doc() -> list[dict[str, Any]]:
    return [
        {"band": b, "share": s, "top_answer_probability": list(r), "top_is_right": t,
         "other_answers": list(o)}
        for b, s, r, t, o in MIXTURE
    ]


def plot_batch(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = ["recorded", "synthetic"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 9))
    for column, name in enumerate(workloads):
        rows = [r for r in report[name]["rows"] if r["width"] == 4]
        for rule in sorted({r["rule"] for r in rows}):
            mine = sorted((r for r in rows if r["rule"] == rule), key=lambda r: r["setting"])
            settings = [r["setting"] for r in mine]
            axes[0][column].plot(settings, [100 * r["tokens_saved"] for r in mine], "o-",
                                 label=rule)
            axes[1][column].plot([100 * r["tokens_saved"] for r in mine],
                                 [r["accuracy_change_points"] for r in mine], "o-", label=rule)
        questions = report[name]["questions"]
        axes[0][column].set_title(f"{name}: {questions} questions x 64 samples, 4 in flight")
        axes[0][column].set_xlabel("threshold (certaindex) / confidence (beta, dirichlet)")
        axes[0][column].set_ylabel("generated tokens saved vs all 64 (%)")
        axes[1][column].set_xlabel("generated tokens saved vs all 64 (%)")
        axes[1][column].set_ylabel("accuracy change vs all 64 (points)")
        axes[1][column].axhline(-1.0, color="grey", linestyle="--", linewidth=0.8)
        axes[1][column].axvline(50.0, color="grey", linestyle="--", linewidth=0.8)
        for axis in (axes[0][column], axes[1][column]):
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
