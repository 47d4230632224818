"""Every example spec, end to end, on the real embedded vLLM engine (one per session).

The 135M model's answers are not judged; the tests assert structure: every node ran,
JSON outputs parsed against their schemas, tokens were counted, calls overlapped.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.orchestrator.scheduler.registry import make_scheduler
from taskloom.program.load import load, loads
from taskloom.runtime import Runtime, shared_sample_pool

SPECS = Path(__file__).parent.parent / "specs"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_quickstart_runs_its_fan_out_in_parallel(engine: VLLMBackend) -> None:
    result = await Runtime(engine).run(load(SPECS / "quickstart.yaml"))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["verdict"] in ("good", "mixed")
    assert isinstance(result.outputs["headline"], str)
    assert result.outputs["capacity_kw"] == pytest.approx(4.8)
    fan = [result.nodes[n] for n in ("advantage", "drawback", "fact")]
    assert all(n.generated_tokens > 0 and n.prompt_tokens > 0 for n in fan)
    # The three independent calls were in the engine at the same time.
    assert max(n.started_s or 0 for n in fan) < min(n.ended_s or 0 for n in fan)
    summary = result.nodes["summary"]
    assert summary.started_s is not None
    assert summary.started_s >= max(n.ended_s or 0 for n in fan)


@pytest.mark.anyio
async def test_map_spec_describes_every_city(engine: VLLMBackend) -> None:
    cities = ["Oslo", "Lima", "Kyoto"]
    result = await Runtime(engine).run(load(SPECS / "map_cities.yaml"), {"cities": cities})
    assert result.status is RunStatus.SUCCEEDED, result.error
    descriptions = result.outputs["descriptions"]
    assert len(descriptions) == 3 and all(isinstance(d, str) and d for d in descriptions)
    assert len(result.outputs["chars_per_word"]) == 3
    assert isinstance(result.outputs["favourite"], str)
    assert result.nodes["describe"].llm_calls == 3


@pytest.mark.anyio
async def test_conditional_spec_runs_exactly_one_branch(engine: VLLMBackend) -> None:
    result = await Runtime(engine).run(load(SPECS / "conditional.yaml"))
    assert result.status is RunStatus.SUCCEEDED, result.error
    label = result.outputs["label"]
    assert label in ("question", "complaint")
    ran, skipped = ("answer", "apologize") if label == "question" else ("apologize", "answer")
    assert result.nodes[ran].status is NodeStatus.SUCCEEDED
    assert result.nodes[skipped].status is NodeStatus.SKIPPED
    assert result.outputs["draft"] == result.nodes[ran].output


@pytest.mark.anyio
async def test_cancelling_a_run_leaves_no_request_in_the_engine(engine: VLLMBackend) -> None:
    spec = """
name: long
defaults: {max_tokens: 1500, temperature: 0.8, seed: 1}
nodes:
  quick: {kind: tool, tool: calculator, args: {expression: "2 ** 10"}}
  essay1: {kind: llm, prompt: "Write a very long story about a lighthouse."}
  essay2: {kind: llm, prompt: "Write a very long story about a glacier."}
"""
    stop = anyio.Event()

    async def stop_soon() -> None:
        await anyio.sleep(3)  # two 1500-token essays cannot finish in 3 s on this engine
        stop.set()

    async with anyio.create_task_group() as group:
        group.start_soon(stop_soon)
        partial = await Runtime(engine).run(loads(spec), cancel=stop)
    assert partial.status is RunStatus.CANCELLED
    assert partial.nodes["quick"].output == 1024  # finished work is kept
    assert partial.nodes["essay1"].status is NodeStatus.CANCELLED
    with anyio.fail_after(10):
        while engine.num_unfinished_requests():
            await anyio.sleep(0.05)
    assert engine.in_flight_request_ids() == frozenset()


@pytest.mark.anyio
async def test_a_timed_out_run_reports_cancelled_with_partial_results(
    engine: VLLMBackend,
) -> None:
    spec = """
name: slow
defaults: {temperature: 0.8, seed: 2}
nodes:
  fast: {kind: tool, tool: calculator, args: {expression: "3 * 3"}}
  slow:
    kind: llm
    prompt: "Write a very long story about a lighthouse keeper."
    max_tokens: 1500
    after: [fast]
"""
    result = await Runtime(engine).run(loads(spec), timeout=3)
    assert result.status is RunStatus.CANCELLED
    assert "timed out" in (result.error or "")
    assert result.nodes["fast"].output == 9
    assert result.nodes["slow"].status is NodeStatus.CANCELLED
    with anyio.fail_after(10):
        while engine.num_unfinished_requests():
            await anyio.sleep(0.05)


@dataclass
class CountingBackend:
    """Passes every call to `inner` and counts the calls in flight: `most_in_flight` is
    the most there ever were at once. (Polling the engine between event-loop turns can
    miss a peak; this sees every call start and end.)"""

    inner: VLLMBackend
    name: str = "counting"
    in_flight: int = 0
    most_in_flight: int = 0

    def capacity(self) -> int:
        return self.inner.capacity()

    async def close(self) -> None:
        """The session's engine stays open for the tests after this one."""

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            async with aclosing(self.inner.generate(request)) as stream:
                async for chunk in stream:
                    yield chunk
        finally:
            self.in_flight -= 1


@pytest.mark.anyio
async def test_self_consistency_questions_share_a_sample_pool(engine: VLLMBackend) -> None:
    # Three questions of up to 8 samples, gangs of 3, in a pool of 4 slots. A question
    # starts only with its whole gang, so 3 samples were in the engine together at least
    # once; the pool lets at most 4 in at a time (24 without it).
    gang, slots = 3, 4
    counting = CountingBackend(engine)
    scheduler = shared_sample_pool(make_scheduler("plas", [counting]), slots)
    result = await Runtime(counting, scheduler=scheduler).run(
        load(SPECS / "self_consistency.yaml")
    )
    assert result.status is RunStatus.SUCCEEDED, result.error
    used = result.outputs["samples_used"]
    assert len(used) == 3 and all(gang <= count <= 8 for count in used)
    assert len(result.outputs["answers"]) == 3
    assert gang <= counting.most_in_flight <= slots
    assert counting.in_flight == 0
