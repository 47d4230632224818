"""Probing part of `early_stop.py`: Dynasor-CoT on the real embedded engine.

specs/long_reasoning.yaml is run on a set of word problems twice, on the same engine:
- with probing, as written (a probe every 32 tokens, stop when 3 agree);
- without: the same spec with probes spaced beyond `max_tokens`, so that no probe is
  ever sent and the call takes the same path (plain-text prompt, greedy decoding): the
  reasoning is the same text, only never cut.

Reported per problem and in total: generated tokens of the reasoning with and without
probing, the probes' generated tokens (the overhead), their prompt tokens and how many
of those the prefix cache served, and whether the early answer is the one the full
reasoning gives. (The model rarely writes a \\boxed answer by itself; a generation that
ends without one gets one probe after its last token, in both runs.)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.factory import open_backend
from taskloom.orchestrator.result import NodeResult
from taskloom.program.load import load
from taskloom.program.models import Program
from taskloom.runtime import Runtime

SPEC = Path(__file__).parent.parent / "specs" / "long_reasoning.yaml"

PROBLEMS = [
    "A baker makes 24 muffins and sells them in boxes of 4. How many boxes does he fill?",
    "Tom has 15 apples. He gives 6 to his sister and buys 8 more. How many apples does he have?",
    "A train travels 60 miles per hour for 3 hours. How far does it go?",
    "There are 5 rows of chairs with 9 chairs in each row. How many chairs are there?",
    "Sara reads 12 pages a day. How many pages does she read in a week?",
    "A shirt costs 20 dollars and is on sale for 25 percent off. What is the sale price?",
    "A rectangle is 7 cm long and 3 cm wide. What is its area?",
    "Mia had 40 stickers and shared them equally among 8 friends. How many did each get?",
]


def without_probes(program: Program) -> Program:
    data = program.model_dump(by_alias=True, exclude_none=True)
    solve = data["nodes"]["solve"]
    max_tokens = solve.get("max_tokens") or data["defaults"]["max_tokens"]
    solve["probe"]["every"] = max_tokens + 1  # never reached: no probe is sent
    return Program.model_validate(data)


async def _solve_all(runtime: Runtime, program: Program) -> list[NodeResult]:
    results: list[NodeResult | None] = [None] * len(PROBLEMS)

    async def one(index: int) -> None:
        run = await runtime.run(program, {"question": PROBLEMS[index]})
        results[index] = run.nodes["solve"]

    async with anyio.create_task_group() as group:
        for index in range(len(PROBLEMS)):
            group.start_soon(one, index)
    return [r for r in results if r is not None]


async def run_probe_benchmark() -> dict[str, Any]:
    probed_program = load(SPEC)
    plain_program = without_probes(probed_program)
    started = time.monotonic()
    async with open_backend("vllm", max_num_seqs=16) as backend:
        start_s = time.monotonic() - started
        runtime = Runtime(backend)
        plain = await _solve_all(runtime, plain_program)
        probed = await _solve_all(runtime, probed_program)
    rows = [_row(*three) for three in zip(PROBLEMS, plain, probed, strict=True)]
    return {"engine_start_s": round(start_s, 1), "problems": rows, "total": _total(rows)}


def _row(question: str, plain: NodeResult, probed: NodeResult) -> dict[str, Any]:
    out_plain, out_probed = plain.output, probed.output
    return {
        "question": question,
        "reasoning_tokens_without": out_plain["generated_tokens"],
        "reasoning_tokens_with": out_probed["generated_tokens"],
        "probe_tokens": out_probed["probe_tokens"],
        "readout_tokens_without": out_plain["probe_tokens"],
        "probes": len(out_probed["probe_answers"]),
        "stopped_early": out_probed["stopped_early"],
        "answer_of_full_reasoning": out_plain["answer"],
        "answer_with": out_probed["answer"],
        "prompt_tokens_with": probed.prompt_tokens,
        "cached_prompt_tokens_with": probed.cached_prompt_tokens,
    }


def _total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    without = sum(r["reasoning_tokens_without"] for r in rows)
    with_probes = sum(r["reasoning_tokens_with"] for r in rows)
    overhead = sum(r["probe_tokens"] for r in rows)
    readout = sum(r["readout_tokens_without"] for r in rows)
    return {
        "reasoning_tokens_without": without,
        "readout_tokens_without": readout,
        "reasoning_tokens_with": with_probes,
        "probe_tokens": overhead,
        "generated_tokens_saved": round(1 - (with_probes + overhead) / (without + readout), 4),
        "stopped_early": sum(r["stopped_early"] for r in rows),
        "answers_changed": sum(r["answer_with"] != r["answer_of_full_reasoning"] for r in rows),
        "probe_prompt_tokens": sum(r["prompt_tokens_with"] for r in rows),
        "probe_prompt_tokens_cached": sum(r["cached_prompt_tokens_with"] for r in rows),
    }
