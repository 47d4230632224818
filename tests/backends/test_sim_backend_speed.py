"""`SimBackend(speed=...)`: the engine runs that many times faster than its clock, and
computes the same steps (`taskloom serve --sim-speed`)."""

from __future__ import annotations

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.backends.sim import SimBackend, SimEngineConfig, StepCostModel

COST = StepCostModel(base_s=1.0, prefill_token_s=0.01, decode_seq_s=0.1, context_token_s=0.001)
SMALL = SimEngineConfig(max_num_seqs=8, num_kv_blocks=64, block_size=4,
                        max_num_batched_tokens=64, enable_prefix_caching=False)


def _request(call_id: str, max_tokens: int) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt="one two three four five",
                           sampling=SamplingParams(max_tokens=max_tokens))


def _finish_times(speed: float, stream_interval: int) -> tuple[list[float], int, int]:
    """Clock seconds until each of three staggered requests ends; engine steps; tokens."""

    async def main() -> tuple[list[float], int, int]:
        ends: list[float] = []
        async with SimBackend(SMALL, COST, speed=speed,
                              stream_interval=stream_interval) as backend:
            start = anyio.current_time()

            async def one(index: int) -> None:
                await anyio.sleep(index * 0.7 / speed)
                async for _ in backend.generate(_request(f"c{index}", 6 + 5 * index)):
                    pass
                ends.append(anyio.current_time() - start)

            async with anyio.create_task_group() as group:
                for index in range(3):
                    group.start_soon(one, index)
            stats = backend.stats()
        return sorted(ends), stats.steps, stats.generated_tokens

    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


@pytest.mark.parametrize("stream_interval", [1, 4])
@pytest.mark.parametrize("speed", [2.0, 10.0])
def test_a_faster_engine_ends_every_request_sooner_by_its_speed(
    speed: float, stream_interval: int
) -> None:
    real_time, real_steps, real_tokens = _finish_times(1.0, stream_interval)
    fast, steps, tokens = _finish_times(speed, stream_interval)
    assert fast == pytest.approx([t / speed for t in real_time], rel=1e-9)
    assert (steps, tokens) == (real_steps, real_tokens)  # the same work, only sooner


@pytest.mark.parametrize("speed", [0.0, -1.0, float("inf"), float("nan")])
def test_a_speed_that_is_not_a_positive_number_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="speed must be a positive number"):
        SimBackend(SMALL, COST, speed=speed)
