"""The `plan` spec end to end on the embedded engine (SmolLM2-135M, JSON plans).

The model is too small to plan correctly, so this checks structure: the spec runs to an
answer of the declared type, the plan's tasks appear as nodes with their own timings
(in the result and as live events), and the planner and joiner calls were counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.load import load
from taskloom.runtime import Runtime

SPEC = Path(__file__).parent.parent.parent / "specs" / "plan_arithmetic.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.engine
async def test_the_plan_spec_runs_on_the_embedded_engine(engine: VLLMBackend) -> None:
    events: list[NodeEvent] = []
    result = await Runtime(engine).run(load(SPEC), on_event=events.append)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert isinstance(result.outputs["answer"], int | float)
    node = result.nodes["solve"]
    assert node.status is NodeStatus.SUCCEEDED
    assert 2 <= node.llm_calls <= 4  # a planner and a joiner per round, at most two rounds
    assert node.prompt_tokens > 0 and node.generated_tokens > 0
    tasks = [n for n in result.nodes.values() if n.node_id.startswith("solve/plan")]
    assert tasks, "the JSON plan held at least one task"
    assert {n.kind for n in tasks} == {"tool"}
    for task in tasks:
        assert task.status in (NodeStatus.SUCCEEDED, NodeStatus.FAILED)
        assert task.started_s is not None and task.ended_s is not None
        assert node.started_s is not None and node.ended_s is not None
        assert node.started_s <= task.started_s <= task.ended_s <= node.ended_s
        if task.status is NodeStatus.FAILED:
            assert task.error  # a failed task says why, for the joiner
        # Shown live too: announced when written, last event the way it ended.
        seen = [e for e in events if e.node_id == task.node_id]
        assert seen[0].status is NodeStatus.PENDING and seen[-1].status is task.status
        assert {e.parent for e in seen} == {"solve"}
