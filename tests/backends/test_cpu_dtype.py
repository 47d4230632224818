"""The engine's dtype follows the CPU: float32 unless the CPU computes bf16 natively."""

from __future__ import annotations

import pytest

from taskloom.backends.cpu_dtype import (
    CpuInfo,
    DtypeError,
    choose_dtype,
    parse_cpuinfo,
    read_cpu_info,
)
from taskloom.backends.vllm_engine import VLLMBackend

AVX2_ONLY = CpuInfo("AMD EPYC", frozenset({"fpu", "sse4_2", "avx", "avx2", "fma"}))
SAPPHIRE_RAPIDS = CpuInfo(
    "Intel Xeon", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
)
CPUINFO = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme avx avx2 fma
processor\t: 1
model name\t: AMD EPYC 7B13
flags\t\t: fpu vme avx avx2 fma
"""


def test_a_cpu_without_native_bf16_runs_float32() -> None:
    choice = choose_dtype(None, cpu=AVX2_ONLY, on_gpu=False)
    assert choice.dtype == "float32"
    assert "no native bf16" in choice.describe()


def test_a_cpu_with_avx512_bf16_or_amx_runs_bfloat16() -> None:
    choice = choose_dtype(None, cpu=SAPPHIRE_RAPIDS, on_gpu=False)
    assert choice.dtype == "bfloat16"
    assert "amx_bf16" in choice.reason and "avx512_bf16" in choice.reason
    only_avx512 = CpuInfo("Zen 4", frozenset({"avx512f", "avx512_bf16"}))
    assert choose_dtype(None, cpu=only_avx512, on_gpu=False).dtype == "bfloat16"


def test_a_gpu_keeps_the_models_own_dtype() -> None:
    assert choose_dtype(None, cpu=AVX2_ONLY, on_gpu=True).dtype == "auto"


def test_an_explicit_dtype_wins_and_a_bad_one_is_refused() -> None:
    assert choose_dtype("bfloat16", cpu=AVX2_ONLY, on_gpu=False).dtype == "bfloat16"
    assert choose_dtype("float32", cpu=SAPPHIRE_RAPIDS, on_gpu=True).dtype == "float32"
    with pytest.raises(DtypeError, match=r"unknown dtype 'fp8'.*float32"):
        choose_dtype("fp8", cpu=AVX2_ONLY, on_gpu=False)


def test_cpuinfo_gives_the_first_processors_model_and_flags() -> None:
    info = parse_cpuinfo(CPUINFO)
    assert info.model == "AMD EPYC 7B13"
    assert info.flags == frozenset({"fpu", "vme", "avx", "avx2", "fma"})
    assert not info.native_bf16
    assert parse_cpuinfo("") == CpuInfo("unknown CPU", frozenset())


def test_this_machine_has_a_readable_cpu() -> None:
    assert read_cpu_info().model != "unknown CPU"


def test_the_engine_starts_in_the_chosen_dtype_without_starting() -> None:
    engine = VLLMBackend(dtype="float32")
    assert engine.dtype_choice.dtype == "float32"
    chosen = VLLMBackend()
    assert chosen.dtype_choice.dtype in {"float32", "bfloat16", "auto"}
    with pytest.raises(DtypeError):
        VLLMBackend(dtype="int3")
