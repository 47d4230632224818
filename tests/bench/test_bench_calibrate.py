"""Calibration: timing steps through the Backend seam recovers a known cost model."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.cpu_dtype import read_cpu_info
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend, SimEngineConfig, StepCostModel
from taskloom.bench.calibrate import (
    Calibration,
    CalibrationError,
    CalibrationPlan,
    calibrate,
    engine_limits,
    load_calibration,
    save_calibration,
)
from taskloom.bench.runner import run_on_virtual_time

TRUE_COST = StepCostModel(base_s=0.02, prefill_token_s=4e-4, decode_seq_s=2e-3,
                          context_token_s=1e-6)
ENGINE = SimEngineConfig(max_num_seqs=16, max_num_batched_tokens=4096, policy="priority")
PLAN = CalibrationPlan(prefill_lengths=(64, 512, 1024), batch_sizes=(1, 4, 16),
                       decode_prompt_lengths=(32, 384), decode_tokens=8)


def calibrated_against_the_simulator() -> Calibration:
    async def main() -> Calibration:
        async with SimBackend(ENGINE, TRUE_COST) as engine:
            return await calibrate(engine, PLAN, engine=ENGINE, model="sim")

    result: Calibration = run_on_virtual_time(main)
    return result


def test_the_fit_recovers_the_engine_it_timed() -> None:
    calibration = calibrated_against_the_simulator()
    assert len(calibration.samples) == 3 + 2 * 3
    fitted = calibration.cost
    assert fitted.base_s == pytest.approx(TRUE_COST.base_s, rel=0.05)
    assert fitted.prefill_token_s == pytest.approx(TRUE_COST.prefill_token_s, rel=0.05)
    assert fitted.decode_seq_s == pytest.approx(TRUE_COST.decode_seq_s, rel=0.1)
    assert max(calibration.relative_errors()) < 0.02
    assert calibration.engine == ENGINE


def test_a_calibration_file_round_trips(tmp_path: Path) -> None:
    calibration = calibrated_against_the_simulator()
    path = tmp_path / "cal.json"
    save_calibration(calibration, path)
    data = json.loads(path.read_text())
    assert set(data["cost"]) == {"base_s", "prefill_token_s", "decode_seq_s", "context_token_s"}
    assert data["engine"]["max_num_seqs"] == 16
    assert load_calibration(path) == calibration


def test_a_calibration_records_the_cpu_it_was_measured_on() -> None:
    calibration = calibrated_against_the_simulator()
    cpu = read_cpu_info()
    assert calibration.cpu_model == cpu.model
    assert set(calibration.cpu_flags) == cpu.flags
    assert calibration.to_json()["cpu_model"] == cpu.model


def test_a_file_with_only_a_cost_gets_default_engine_limits(tmp_path: Path) -> None:
    path = tmp_path / "cost.json"
    path.write_text(json.dumps({"cost": {"base_s": 1, "prefill_token_s": 0,
                                         "decode_seq_s": 0, "context_token_s": 0}}))
    assert load_calibration(path).engine == SimEngineConfig()


def test_an_unreadable_calibration_says_which_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(CalibrationError, match=r"bad\.json"):
        load_calibration(path)


def test_engines_that_keep_their_limits_private_get_vllm_like_defaults() -> None:
    limits = engine_limits(ScriptedBackend(max_in_flight=5))
    assert limits.max_num_seqs == 5 and limits.policy == "priority"


class _SilentEngine:
    """Ends every stream without a token."""

    name = "silent"

    def capacity(self) -> int:
        return 1

    async def close(self) -> None:
        return None

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        nothing: tuple[Chunk, ...] = ()
        for chunk in nothing:
            yield chunk


def test_an_engine_that_answers_nothing_cannot_be_calibrated() -> None:
    async def main() -> None:
        await calibrate(_SilentEngine(), CalibrationPlan.quick())

    with pytest.raises(CalibrationError, match="no tokens"):
        anyio.run(main)

