"""The run store: runs, nodes and events written and read back, across connections."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from taskloom.orchestrator.result import NodeResult, NodeStatus, Preemption, RunResult, RunStatus
from taskloom.orchestrator.store import RunNotFound, RunRow, RunStore, StoredStatus
from taskloom.program.load import load, loads

SPEC = """
name: two
inputs:
  x: {type: integer, default: 2}
nodes:
  a: {kind: tool, tool: calculator, args: {expression: "1 + 1"}}
outputs:
  a: "{{ a }}"
"""


def _node(
    node_id: str, status: NodeStatus = NodeStatus.SUCCEEDED, output: object = 1
) -> NodeResult:
    return NodeResult(node_id=node_id, kind="tool", status=status, output=output,
                      started_s=0.1, ended_s=0.2, attempts=1, prompt_tokens=3)


def test_a_directory_holds_the_default_file_name(tmp_path: Path) -> None:
    assert RunStore(tmp_path).path == tmp_path / "taskloom.db"
    assert RunStore(tmp_path / "x.db").path == tmp_path / "x.db"


def test_a_saved_result_loads_back_equal_in_node_order(tmp_path: Path) -> None:
    result = RunResult(
        run_id="r1", program="p", status=RunStatus.FAILED, inputs={"k": [1, 2]},
        outputs={"o": {"deep": None}}, error="boom", started_at=5.0, wall_s=1.5,
        nodes={"z": _node("z"), "a": _node("a", NodeStatus.FAILED, None)},
    )
    RunStore(tmp_path).save(result)
    loaded = RunStore(tmp_path).load("r1")  # a second connection sees the commit
    assert loaded.nodes == result.nodes
    assert list(loaded.nodes) == ["z", "a"]
    assert (loaded.status, loaded.outputs, loaded.error, loaded.wall_s) == (
        RunStatus.FAILED, {"o": {"deep": None}}, "boom", 1.5)
    assert loaded.inputs == {"k": [1, 2]}


def test_an_unknown_run_is_run_not_found(tmp_path: Path) -> None:
    with pytest.raises(RunNotFound, match="no run 'nope'"):
        RunStore(tmp_path).load("nope")


def test_a_begun_run_keeps_the_spec_file_text_and_reads_as_running(tmp_path: Path) -> None:
    spec = tmp_path / "two.yaml"
    spec.write_text(SPEC)
    store = RunStore(tmp_path)
    store.begin("r2", load(spec), {"x": 2}, "plas")
    row = store.get("r2")
    assert row is not None
    assert (row.status, row.spec_text, row.spec_file, row.policy, row.origin) == (
        StoredStatus.RUNNING, SPEC, str(spec), "plas", "cli")
    assert row.spec_hash is not None and len(row.spec_hash) == 64
    store.checkpoint("r2", [_node("a")])
    partial = store.load("r2")
    assert partial.status is RunStatus.CANCELLED and "not finished" in (partial.error or "")
    assert list(partial.nodes) == ["a"]


def test_a_program_built_in_python_is_kept_as_reloadable_json(tmp_path: Path) -> None:
    program = loads(SPEC)
    store = RunStore(tmp_path)
    store.begin("r3", program, {}, None)
    row = store.get("r3")
    assert row is not None and row.spec_text is not None
    assert loads(row.spec_text) == program


def test_finished_nodes_keep_finished_ones_and_their_plan_tasks_only(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.create_run(RunRow(run_id="r", program="p", status=StoredStatus.RUNNING))
    store.checkpoint("r", [
        _node("done"), _node("done/plan1/1"), _node("skipped", NodeStatus.SKIPPED, None),
        _node("halfway", NodeStatus.RUNNING), _node("halfway/plan1/1"),
        _node("cancelled", NodeStatus.CANCELLED),
    ])
    kept = store.finished_nodes("r", {"done", "skipped", "halfway", "cancelled"})
    assert set(kept) == {"done", "done/plan1/1", "skipped"}
    assert set(store.nodes("r")) == set(kept)  # the half-done rows are gone from disk


def test_events_are_numbered_per_run_and_read_after_a_number(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for run_id in ("a", "b"):
        store.create_run(RunRow(run_id=run_id, program="p", status=StoredStatus.RUNNING))
    assert [store.append_event("a", "node", {"i": i}) for i in range(3)] == [1, 2, 3]
    assert store.append_event("b", "node", {}) == 1
    after = store.events_after("a", 1)
    assert [(e.seq, e.data) for e in after] == [(2, {"i": 1}), (3, {"i": 2})]


def test_runs_are_listed_newest_first_and_filtered(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    for i, (tenant, status) in enumerate(
        [("t1", StoredStatus.RUNNING), ("t2", StoredStatus.SUCCEEDED),
         ("t1", StoredStatus.SUCCEEDED)]
    ):
        store.create_run(RunRow(run_id=f"r{i}", program="p", status=status, tenant=tenant,
                                created_at=100.0 + i))
    assert [r.run_id for r in store.runs()] == ["r2", "r1", "r0"]
    assert [r.run_id for r in store.runs(tenant="t1")] == ["r2", "r0"]
    assert [r.run_id for r in store.runs(status=StoredStatus.SUCCEEDED, limit=1)] == ["r2"]
    assert store.counts() == {"running": 1, "succeeded": 2}
    assert store.run_ids() == ["r0", "r1", "r2"]
    store.set_status("r0", StoredStatus.CANCELLED, "stop")
    row = store.get("r0")
    assert row is not None and (row.status, row.error) == (StoredStatus.CANCELLED, "stop")


def test_a_nodes_preemptions_load_back_with_their_times(tmp_path: Path) -> None:
    preempted = (Preemption(at_s=3.5, resumed_s=15.5), Preemption(at_s=20.0, resumed_s=None))
    node = replace(_node("long"), kind="llm", preempted=preempted)
    result = RunResult(run_id="r", program="p", status=RunStatus.SUCCEEDED,
                       nodes={"long": node, "quiet": _node("quiet")})
    RunStore(tmp_path).save(result)
    loaded = RunStore(tmp_path).load("r").nodes
    assert loaded["long"].preempted == preempted and loaded["long"].preemptions == 2
    assert loaded["quiet"].preempted == ()
