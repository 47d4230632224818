"""Keep-warm hints through the benchmark runner, on the simulated engine, virtual time."""

from __future__ import annotations

from dataclasses import replace

from taskloom.backends.sim import H100_LLAMA3_8B_ENGINE, SimStats
from taskloom.bench.autellix.points import RecordingSimEngines
from taskloom.bench.metrics import BenchRow
from taskloom.bench.runner import BenchConfig, SimSetup, run_on_virtual_time, run_point
from taskloom.bench.workloads import WorkloadOptions, build_workload

SHORT_SESSIONS = WorkloadOptions(agent_context_tokens=6_000)


def run(keep_warm: bool, num_kv_blocks: int, programs: int = 4,
        rate: float = 0.5) -> tuple[BenchRow, SimStats]:
    setup = SimSetup(engine=replace(H100_LLAMA3_8B_ENGINE, num_kv_blocks=num_kv_blocks),
                     stream_interval=16)
    config = BenchConfig(workload="coding-agent", policies=("fcfs",), rates=(rate,),
                         programs=programs, seed=3, sim=setup, options=SHORT_SESSIONS,
                         keep_warm=keep_warm)
    workload = build_workload("coding-agent", programs, 3, SHORT_SESSIONS)
    engines = RecordingSimEngines(setup)
    point = run_on_virtual_time(run_point, config, workload, "fcfs", rate, engines,
                                lambda outcome: None)
    return point.row, engines.stats[0]


def test_with_room_to_spare_keep_warm_pins_every_call_and_changes_no_number() -> None:
    plain_row, plain = run(keep_warm=False, num_kv_blocks=8192)
    warm_row, warm = run(keep_warm=True, num_kv_blocks=8192)
    assert plain.warm_pins_kept == 0 and plain.warm_hit_tokens == 0
    # Every call but each session's last is followed by a tool and another call.
    assert warm.warm_pins_taken_over == warm_row.llm_calls - 4
    assert warm.warm_hit_tokens > 0
    assert warm.warm_pins_released_early == warm.warm_pins_expired == 0
    # Nothing was short of KV, so pinning only kept blocks nobody else needed.
    assert warm_row.mean_latency_s == plain_row.mean_latency_s
    assert warm.cached_prompt_tokens == plain.cached_prompt_tokens
    assert warm.busy_s == plain.busy_s


def test_when_kv_is_short_pins_keep_sessions_warm_across_their_tools() -> None:
    # 8,192 tokens of KV for sessions growing to 6,000: they evict each other.
    plain_row, plain = run(keep_warm=False, num_kv_blocks=512)
    warm_row, warm = run(keep_warm=True, num_kv_blocks=512)
    assert plain_row.failed_programs == warm_row.failed_programs == 0
    assert warm.warm_pins_released_early + warm.warm_pins_expired > 0
    assert warm.warm_hit_tokens > 0
    assert warm.cached_prompt_tokens > plain.cached_prompt_tokens
