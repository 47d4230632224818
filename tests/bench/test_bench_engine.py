"""The runner and calibration, unchanged, on the real embedded vLLM engine (small runs)."""

from __future__ import annotations

import pytest

from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.bench.calibrate import CalibrationPlan, calibrate
from taskloom.bench.replay import RecordingBackend
from taskloom.bench.runner import BenchConfig, SharedEngines, run_points
from taskloom.bench.workloads import WorkloadOptions, build_workload

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_small_chat_benchmark_runs_on_the_real_engine(engine: VLLMBackend) -> None:
    options = WorkloadOptions(max_context_tokens=256, max_output_tokens=6)
    config = BenchConfig(workload="chat", policies=("fcfs",), rates=(4.0,), programs=3,
                         seed=1, backend="vllm", options=options)
    workload = build_workload("chat", 3, seed=1, options=options)
    recording = RecordingBackend(engine)
    finished: list[int] = []
    (row,) = await run_points(config, workload, SharedEngines([recording]),
                              lambda outcome: finished.append(outcome.index))
    assert sorted(finished) == [0, 1, 2]
    assert row.failed_programs == 0 and row.programs == 3
    assert row.mean_latency_s is not None and row.mean_latency_s > 0
    assert 0 < row.generated_tokens <= 6 * workload.llm_calls
    assert row.generated_tokens == recording.lengths.generated_tokens
    assert row.busy_fraction is None and row.preemptions is None  # not told by vLLM


async def test_calibration_times_real_engine_steps(engine: VLLMBackend) -> None:
    plan = CalibrationPlan(prefill_lengths=(32, 128), batch_sizes=(1, 2),
                           decode_prompt_lengths=(16,), decode_tokens=6)
    calibration = await calibrate(engine, plan)
    assert len(calibration.samples) >= 3
    assert all(sample.seconds > 0 for sample in calibration.samples)
    assert calibration.cost.base_s + calibration.cost.decode_seq_s > 0
    assert calibration.engine.max_num_seqs == 16  # read from vLLM's own config
    assert calibration.engine.block_size >= 1
