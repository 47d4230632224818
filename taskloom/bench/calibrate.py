"""`taskloom bench calibrate`: fit the simulator's step cost to a real engine.

Engine steps are timed from the outside, through the `Backend` seam, by streaming
timestamps:

- **prefill**: one request with a P-token prompt and `max_tokens=1`; the time to its
  only token is one step that prefills P tokens (P up to the engine's token budget);
- **decode**: B requests with short or long prompts started together; once all of them
  have their first token and until the first one finishes, every step decodes B
  sequences, so the seconds per generated token of any of them is the step time at B
  decode sequences and their summed context.

`fit_cost_model` turns the samples into a `StepCostModel`. The engine's limits (batch
size, token budget, KV blocks) are read from vLLM's own configuration when the backend
is an in-process vLLM engine. Timings include what the seam adds per step (moving
outputs between processes, detokenizing), which is what a program sees.
"""

from __future__ import annotations

import dataclasses
import json
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend, GenerateRequest, SamplingParams
from taskloom.backends.cpu_dtype import read_cpu_info
from taskloom.backends.sim import CostSample, SimEngineConfig, StepCostModel, fit_cost_model
from taskloom.errors import TaskloomError

# Common English words that SmolLM2's (and most BPE) vocabularies hold as one token with
# their leading space, so a prompt of N words is about N tokens.
_WORDS = (
    "river", "stone", "green", "music", "paper", "light", "north", "table", "cloud",
    "water", "house", "tree", "bird", "road", "city", "field", "story", "night", "color",
    "winter", "summer", "mountain", "garden", "window", "letter", "market",
)


class CalibrationError(TaskloomError):
    """The engine gave too few usable timings to fit a cost model."""


@dataclass(frozen=True)
class CalibrationPlan:
    """Which steps to time. The defaults take about a minute on two CPU cores."""

    prefill_lengths: tuple[int, ...] = (64, 256, 512, 1024)
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16)
    decode_prompt_lengths: tuple[int, ...] = (32, 384)
    decode_tokens: int = 24
    repeats: int = 1

    def within_budget(self, max_batched_tokens: int) -> CalibrationPlan:
        """Only prefills that one step can hold (a word is about a token; keep a margin),
        so that each timed prefill is a single step."""
        fits = tuple(n for n in self.prefill_lengths if n <= 0.75 * max_batched_tokens)
        return dataclasses.replace(self, prefill_lengths=fits)

    @classmethod
    def quick(cls) -> CalibrationPlan:
        return cls(prefill_lengths=(64, 512), batch_sizes=(1, 4), decode_prompt_lengths=(32,),
                   decode_tokens=12)


@dataclass(frozen=True)
class Calibration:
    """A fitted cost model, the engine limits it goes with, and the evidence."""

    cost: StepCostModel
    engine: SimEngineConfig
    samples: tuple[CostSample, ...]
    model: str = ""
    measured_at: str = ""
    # The machine the constants were measured on: a CPU engine's speed depends on it
    # (bfloat16 without native bf16 runs about 3x slower than float32).
    cpu_model: str = ""
    cpu_flags: tuple[str, ...] = ()
    dtype: str = ""

    def relative_errors(self) -> list[float]:
        """|fitted - measured| / measured for every sample."""
        return [abs(self.predict(s) - s.seconds) / s.seconds for s in self.samples if s.seconds]

    def predict(self, sample: CostSample) -> float:
        return (self.cost.base_s + self.cost.prefill_token_s * sample.prefill_tokens
                + self.cost.decode_seq_s * sample.decode_seqs
                + self.cost.context_token_s * sample.context_tokens)

    def to_json(self) -> dict[str, Any]:
        errors = self.relative_errors()
        return {
            "cost": dataclasses.asdict(self.cost),
            "engine": dataclasses.asdict(self.engine),
            "model": self.model,
            "measured_at": self.measured_at,
            "cpu_model": self.cpu_model,
            "cpu_flags": list(self.cpu_flags),
            "dtype": self.dtype,
            "mean_abs_relative_error": statistics.fmean(errors) if errors else None,
            "samples": [sample._asdict() for sample in self.samples],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        engine = data.get("engine")
        return cls(
            cost=StepCostModel(**data["cost"]),
            engine=SimEngineConfig(**engine) if engine else SimEngineConfig(),
            samples=tuple(CostSample(**sample) for sample in data.get("samples", ())),
            model=str(data.get("model", "")),
            measured_at=str(data.get("measured_at", "")),
            cpu_model=str(data.get("cpu_model", "")),
            cpu_flags=tuple(str(flag) for flag in data.get("cpu_flags", ())),
            dtype=str(data.get("dtype", "")),
        )


def save_calibration(calibration: Calibration, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration.to_json(), indent=2) + "\n")


def load_calibration(path: Path) -> Calibration:
    """Read a file written by `save_calibration` (or any JSON with a `cost` object)."""
    try:
        data = json.loads(path.read_text())
        return Calibration.from_json(data)
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise CalibrationError(f"cannot read a calibration from {path}: {error}") from error


async def calibrate(
    backend: Backend,
    plan: CalibrationPlan | None = None,
    *,
    engine: SimEngineConfig | None = None,
    model: str = "",
    dtype: str = "",
    on_sample: Callable[[CostSample], None] | None = None,
) -> Calibration:
    """Time `backend`'s steps and fit a cost model; `engine` defaults to what the
    backend says about its limits. The CPU this runs on is recorded with the fit."""
    limits = engine if engine is not None else engine_limits(backend)
    fitting = (plan or CalibrationPlan()).within_budget(limits.max_num_batched_tokens)
    samples = await measure_steps(backend, fitting, on_sample)
    cpu = read_cpu_info()
    if len(samples) < 2:
        raise CalibrationError(f"only {len(samples)} usable timings; at least 2 are needed")
    return Calibration(
        cost=fit_cost_model(samples),
        engine=limits,
        samples=tuple(samples),
        model=model,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        cpu_model=cpu.model,
        cpu_flags=tuple(sorted(cpu.flags)),
        dtype=dtype,
    )


async def measure_steps(
    backend: Backend,
    plan: CalibrationPlan,
    on_sample: Callable[[CostSample], None] | None = None,
) -> list[CostSample]:
    rng = random.Random(0)
    samples: list[CostSample] = []

    def keep(sample: CostSample | None) -> None:
        if sample is not None:
            samples.append(sample)
            if on_sample is not None:
                on_sample(sample)

    await _warm_up(backend, rng)
    for _ in range(plan.repeats):
        for length in plan.prefill_lengths:
            keep(await measure_prefill(backend, length, rng))
        for length in plan.decode_prompt_lengths:
            for batch in plan.batch_sizes:
                keep(await measure_decode(backend, batch, length, plan.decode_tokens, rng))
    return samples


async def measure_prefill(backend: Backend, length: int, rng: random.Random) -> CostSample:
    """One step that prefills a `length`-word prompt and samples its first token."""
    trace = await _stream_times(backend, _request(length, 1, rng))
    prompt_tokens = trace.prompt_tokens
    return CostSample(prompt_tokens, 0, prompt_tokens, trace.first_token_s)


async def measure_decode(
    backend: Backend, batch: int, length: int, tokens: int, rng: random.Random
) -> CostSample | None:
    """Steps decoding `batch` sequences at once; None if they never all overlapped."""
    requests = [_request(length, tokens, rng) for _ in range(batch)]
    traces: list[_StreamTrace] = []

    async def run(request: GenerateRequest) -> None:
        traces.append(await _stream_times(backend, request))

    async with anyio.create_task_group() as group:
        for request in requests:
            group.start_soon(run, request)
    return _decode_sample(traces)


def _decode_sample(traces: Sequence[_StreamTrace]) -> CostSample | None:
    window_start = max(t.points[0][0] for t in traces)
    window_end = min(t.points[-1][0] for t in traces)
    rates: list[float] = []
    context = 0
    for trace in traces:
        inside = [(s, n) for s, n in trace.points if window_start <= s <= window_end]
        if len(inside) < 2 or inside[-1][1] == inside[0][1]:
            return None
        (s0, n0), (s1, n1) = inside[0], inside[-1]
        rates.append((s1 - s0) / (n1 - n0))
        context += trace.prompt_tokens + (n0 + n1) // 2 + 1
    return CostSample(0, len(traces), context, statistics.fmean(rates))


@dataclass(frozen=True)
class _StreamTrace:
    """When each chunk of one request arrived: (seconds since submit, tokens so far)."""

    points: tuple[tuple[float, int], ...]
    prompt_tokens: int

    @property
    def first_token_s(self) -> float:
        return self.points[0][0]


async def _stream_times(backend: Backend, request: GenerateRequest) -> _StreamTrace:
    start = anyio.current_time()
    points: list[tuple[float, int]] = []
    prompt_tokens = 0
    async for chunk in backend.generate(request):
        if chunk.generated_tokens > (points[-1][1] if points else 0):
            points.append((anyio.current_time() - start, chunk.generated_tokens))
        prompt_tokens = chunk.prompt_tokens or prompt_tokens
    if not points:
        raise CalibrationError(f"request {request.call_id} produced no tokens")
    return _StreamTrace(tuple(points), prompt_tokens)


async def _warm_up(backend: Backend, rng: random.Random) -> None:
    # The first requests pay for lazy initialisation (kernels, caches); keep them out.
    for _ in range(2):
        await _stream_times(backend, _request(32, 4, rng))


def _request(words: int, max_tokens: int, rng: random.Random) -> GenerateRequest:
    # Distinct words from the first one on keep the prefix cache from serving any of it.
    text = " ".join(rng.choice(_WORDS) for _ in range(max(1, words)))
    call_id = f"calibrate-{rng.randrange(1 << 40):x}"
    # Continuing a list of words rarely stops early: every request runs to max_tokens.
    return GenerateRequest(call_id=call_id, prompt=text,
                           sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0))


def engine_limits(backend: Backend, default: SimEngineConfig | None = None) -> SimEngineConfig:
    """The limits of `backend` as a `SimEngineConfig`.

    An in-process vLLM engine says them in its `vllm_config` (reached through the
    backend's engine handle, the only place they are kept); any other backend gets
    `default`, or vLLM-like defaults sized to its capacity.
    """
    config = getattr(getattr(backend, "_engine", None), "vllm_config", None)
    if config is None:
        return default or SimEngineConfig(max_num_seqs=backend.capacity(), policy="priority")
    scheduler, cache = config.scheduler_config, config.cache_config
    return SimEngineConfig(
        max_num_seqs=int(scheduler.max_num_seqs),
        num_kv_blocks=int(cache.num_gpu_blocks),
        block_size=int(cache.block_size),
        max_num_batched_tokens=int(scheduler.max_num_batched_tokens),
        enable_prefix_caching=bool(cache.enable_prefix_caching),
        # taskloom starts vLLM with scheduling_policy="priority".
        policy="priority",
    )
