"""Recording a real run's answer lengths and replaying them on the simulator."""

from __future__ import annotations

import anyio

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.bench.replay import RecordedLengths, RecordingBackend


def request(program: str, thread: str, max_tokens: int = 50) -> GenerateRequest:
    return GenerateRequest(call_id=f"{program}/{thread}", prompt="say something",
                           sampling=SamplingParams(max_tokens=max_tokens),
                           program_id=program, thread_id=thread)


def test_recorded_lengths_are_replayed_and_unknown_calls_run_to_max_tokens() -> None:
    recording = RecordingBackend(ScriptedBackend(respond=lambda r: "one two three"))

    async def main() -> None:
        await collect(recording.generate(request("p0", "turn_0/s0")))

    anyio.run(main)
    lengths = recording.lengths
    assert lengths.output_tokens(request("p0", "turn_0/s0")) == 3
    assert lengths.output_tokens(request("p1", "turn_0/s0", max_tokens=7)) == 7
    assert lengths.generated_tokens == 3 and lengths.prompt_tokens > 0


def test_a_recording_backend_passes_the_engine_through() -> None:
    inner = ScriptedBackend(max_in_flight=3)
    recording = RecordingBackend(inner, RecordedLengths())
    assert recording.capacity() == 3 and recording.name == "scripted"
    anyio.run(recording.close)
    assert inner.closed
