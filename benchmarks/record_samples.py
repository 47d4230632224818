"""Record real self-consistency samples from the embedded engine, for replay.

Arithmetic questions with known answers are generated from a fixed seed, in five
difficulty bands (one-digit sums up to two-digit products). Each question is asked
`--samples` times at temperature 0.8 through `VLLMBackend` on the embedded
SmolLM2-135M model, as a short few-shot completion that stops at the end of the line.
The answers are not judged here: `benchmarks/early_stop.py` extracts and votes them.

The run first times a warm-up batch and prints how long the whole recording will take,
so that it can be sized to the machine (about 9 minutes for 100 x 64 on 2 busy cores).

    .venv/bin/python benchmarks/record_samples.py -o benchmarks/data/arith_samples.jsonl

Output (JSON lines): a header line, then one line per question:
    {"question": "23 + 48", "answer": "71", "band": "add2", "prompt_tokens": 21,
     "texts": [...], "tokens": [...]}          # texts[i] used tokens[i] generated tokens
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend, GenerateRequest, SamplingParams, collect
from taskloom.backends.embedded import ensure_embedded_model
from taskloom.backends.vllm_engine import VLLMBackend

# A three-line few-shot prefix: without it the 135M model answers in prose.
FEW_SHOT = "3 + 4 = 7\n15 - 6 = 9\n6 * 3 = 18\n"
TEMPERATURE = 0.8
MAX_TOKENS = 24

Band = tuple[str, Callable[[random.Random], tuple[int, str, int]]]

BANDS: list[Band] = [
    ("add1", lambda r: (r.randint(1, 9), "+", r.randint(1, 9))),
    ("mul1", lambda r: (r.randint(2, 9), "*", r.randint(2, 9))),
    ("add2", lambda r: (r.randint(10, 99), "+", r.randint(10, 99))),
    ("sub2", lambda r: (r.randint(30, 99), "-", r.randint(10, 29))),
    ("mul2", lambda r: (r.randint(11, 29), "*", r.randint(3, 19))),
]


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    band: str

    def prompt(self) -> str:
        return f"{FEW_SHOT}{self.text} ="


def make_questions(count: int, seed: int = 7) -> list[Question]:
    """`count` distinct questions, cycling through the bands so each gets its share."""
    rng = random.Random(seed)
    questions: list[Question] = []
    seen: set[str] = set()
    while len(questions) < count:
        band, draw = BANDS[len(questions) % len(BANDS)]
        left, op, right = draw(rng)
        text = f"{left} {op} {right}"
        if text in seen:
            continue
        seen.add(text)
        value = {"+": left + right, "-": left - right, "*": left * right}[op]
        questions.append(Question(text, str(value), band))
    return questions


async def sample_question(
    backend: Backend, question: Question, samples: int, limiter: anyio.CapacityLimiter
) -> dict[str, Any]:
    texts: list[str] = [""] * samples
    tokens: list[int] = [0] * samples
    prompt_tokens = 0

    async def one(index: int) -> None:
        nonlocal prompt_tokens
        request = GenerateRequest(
            call_id=f"{question.text}#{index}",
            prompt=question.prompt(),
            # No seed: the CPU build of vLLM 0.32 crashes on seeded requests in a large
            # batch ("CPU Generator does not use offset"); the file is the record anyway.
            sampling=SamplingParams(max_tokens=MAX_TOKENS, temperature=TEMPERATURE, stop=("\n",)),
        )
        async with limiter:
            completion = await collect(backend.generate(request))
        texts[index], tokens[index] = completion.text, completion.generated_tokens
        prompt_tokens = completion.prompt_tokens

    async with anyio.create_task_group() as group:
        for index in range(samples):
            group.start_soon(one, index)
    return {
        "question": question.text,
        "answer": question.answer,
        "band": question.band,
        "prompt_tokens": prompt_tokens,
        "texts": texts,
        "tokens": tokens,
    }


async def record(args: argparse.Namespace) -> None:
    questions = make_questions(args.questions)
    backend = VLLMBackend(ensure_embedded_model(), max_num_seqs=args.max_num_seqs)
    limiter = anyio.CapacityLimiter(args.max_num_seqs * 2)
    rows: list[dict[str, Any] | None] = [None] * len(questions)
    done = 0

    async def one_question(index: int) -> None:
        nonlocal done
        rows[index] = await sample_question(backend, questions[index], args.samples, limiter)
        done += 1
        if done == args.warmup or done % 10 == 0:
            _report_progress(done, len(questions), started, args.samples)

    async with backend:
        started = time.monotonic()  # after the engine start, which is not sampling time
        # Every question at once: the limiter keeps the engine's queue full but bounded,
        # and questions finish roughly in order because the limiter is FIFO.
        async with anyio.create_task_group() as group:
            for index in range(len(questions)):
                group.start_soon(one_question, index)
    wall_s = time.monotonic() - started
    finished = [row for row in rows if row is not None]
    header = _header(args, wall_s, finished)
    _write(Path(args.output), header, finished)
    print(f"wrote {len(finished)} questions x {args.samples} samples to {args.output} "
          f"in {wall_s:.0f} s ({header['samples_per_s']:.1f} samples/s)")


def _report_progress(done: int, total: int, started: float, samples: int) -> None:
    elapsed = time.monotonic() - started
    rate = done * samples / elapsed
    remaining = (total - done) * samples / rate
    print(f"{done}/{total} questions, {rate:.1f} samples/s, about {remaining:.0f} s left",
          flush=True)


def _header(args: argparse.Namespace, wall_s: float, rows: list[dict[str, Any]]) -> dict[str, Any]:
    generated = sum(sum(row["tokens"]) for row in rows)
    return {
        "kind": "header",
        "model": "SmolLM2-135M-Instruct (bf16, embedded), vLLM CPU",
        "prompt_template": FEW_SHOT + "{question} =",
        "temperature": TEMPERATURE,
        "max_tokens": MAX_TOKENS,
        "stop": "\\n",
        "samples_per_question": args.samples,
        "questions": len(rows),
        "generated_tokens": generated,
        "wall_s": round(wall_s, 1),
        "samples_per_s": round(len(rows) * args.samples / wall_s, 2),
        "recorded_at": time.strftime("%Y-%m-%d"),
        "command": "benchmarks/record_samples.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "output"
        ),
    }


def _write(path: Path, header: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(json.dumps(header) + "\n")
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", default="benchmarks/data/arith_samples.jsonl")
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--max-num-seqs", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=4,
                        help="print the time estimate after this many questions")
    anyio.run(record, parser.parse_args())


if __name__ == "__main__":
    main()
