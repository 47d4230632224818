"""Which dtype the in-process engine runs in, chosen by the machine it runs on.

The embedded model ships as bfloat16, but a CPU without native bf16 arithmetic emulates
it. Measured on this project's machines: an AVX2-only AMD EPYC ran 16 prompts x 64
tokens at 44 tokens/s in bfloat16 and 147 tokens/s in float32 (3.3x). A CPU with
`avx512_bf16` or AMX runs bfloat16 natively, and there it is the faster choice. On a GPU
the model's own dtype (vLLM's "auto") is right.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from taskloom.errors import TaskloomError

# Flags in /proc/cpuinfo that mean the CPU computes in bf16 natively.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
DTYPES = ("auto", "float32", "bfloat16", "float16")
_CPUINFO = Path("/proc/cpuinfo")
_NVIDIA_DRIVER = Path("/proc/driver/nvidia/version")


class DtypeError(TaskloomError, ValueError):
    """A dtype the engine does not know."""


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and feature flags, as /proc/cpuinfo gives them."""

    model: str
    flags: frozenset[str]

    @property
    def native_bf16(self) -> bool:
        return bool(self.flags & NATIVE_BF16_FLAGS)


@dataclass(frozen=True)
class DtypeChoice:
    """The dtype the engine starts in and why, for its start line."""

    dtype: str
    reason: str

    def describe(self) -> str:
        return f"{self.dtype} ({self.reason})"


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags from /proc/cpuinfo text."""
    model, flags = "unknown CPU", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags)


def read_cpu_info() -> CpuInfo:
    """This machine's CPU; an unknown CPU with no flags where /proc is not Linux's."""
    try:
        return parse_cpuinfo(_CPUINFO.read_text(errors="replace"))
    except OSError:
        return CpuInfo("unknown CPU", frozenset())


def has_nvidia_gpu() -> bool:
    """Whether an NVIDIA driver is loaded (a cheap check: no torch import)."""
    return _NVIDIA_DRIVER.exists()


def choose_dtype(
    requested: str | None, *, cpu: CpuInfo, on_gpu: bool
) -> DtypeChoice:
    """`requested` when given; else the model's own dtype on a GPU, bfloat16 on a CPU
    with native bf16, and float32 on any other CPU."""
    if requested is not None:
        if requested not in DTYPES:
            raise DtypeError(
                f"unknown dtype {requested!r}; choose one of {', '.join(DTYPES)}"
            )
        return DtypeChoice(requested, "as asked with --dtype")
    if on_gpu:
        return DtypeChoice("auto", "the model's own dtype on a GPU")
    if cpu.native_bf16:
        native = ", ".join(sorted(cpu.flags & NATIVE_BF16_FLAGS))
        return DtypeChoice("bfloat16", f"this CPU computes bf16 natively: {native}")
    return DtypeChoice("float32", "this CPU has no native bf16 (no avx512_bf16 or AMX)")


def choose_engine_dtype(requested: str | None = None) -> DtypeChoice:
    """`choose_dtype` for the machine this process runs on."""
    return choose_dtype(requested, cpu=read_cpu_info(), on_gpu=has_nvidia_gpu())
