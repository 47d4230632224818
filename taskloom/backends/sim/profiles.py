"""Ready-made engine profiles, derived from public figures.

These are estimates, not measurements: each number below is arithmetic on a published
fact plus a stated efficiency assumption. `fit_cost_model` (used by `taskloom bench
calibrate`) replaces them with numbers measured on a real engine.

Public facts used:
- Llama 3 8B has 8.03e9 parameters, 32 layers, 8 KV heads of dimension 128
  (Meta's model card and the `config.json` on its Hugging Face page).
- H100 SXM5 80GB: 3.35 TB/s HBM3 bandwidth and 989 TFLOPS dense BF16 tensor-core peak
  (NVIDIA H100 datasheet; the often quoted 1,979 TFLOPS assumes 2:4 sparsity).
  `nvidia-smi` reports 81,559 MiB of memory on it.
- vLLM 0.32 defaults for the OpenAI server on a GPU with >= 70 GiB (`EngineArgs`):
  max_num_seqs 1024, max_num_batched_tokens 8192, block_size 16,
  gpu_memory_utilization 0.92, prefix caching on.
"""

from __future__ import annotations

from taskloom.backends.sim.config import SimEngineConfig
from taskloom.backends.sim.cost import StepCostModel

LLAMA3_8B_PARAMS = 8.03e9
LLAMA3_8B_WEIGHT_BYTES = 2 * LLAMA3_8B_PARAMS  # bf16: ~16.1 GB
LLAMA3_8B_FLOPS_PER_TOKEN = 2 * LLAMA3_8B_PARAMS  # one multiply-add per weight
# K and V, per layer, per KV head, per dimension, 2 bytes each: 128 KiB per token.
LLAMA3_8B_KV_BYTES_PER_TOKEN = 2 * 32 * 8 * 128 * 2

H100_HBM_BYTES_PER_S = 3.35e12
H100_DENSE_BF16_FLOPS = 989e12
H100_MEMORY_BYTES = 81_559 * 2**20

# Assumptions (not published facts): kernels reach about 80% of peak HBM bandwidth;
# large prefill GEMMs reach ~40% of peak FLOPS once attention, norms and launch gaps
# are included, decode GEMMs (a few hundred rows) ~30%; activations, CUDA graphs and
# the sampler take ~4 GB besides weights and KV cache.
BANDWIDTH_EFFICIENCY = 0.80
PREFILL_FLOPS_EFFICIENCY = 0.40
DECODE_FLOPS_EFFICIENCY = 0.30
NON_KV_OVERHEAD_BYTES = 4e9
GPU_MEMORY_UTILIZATION = 0.92

_EFFECTIVE_BANDWIDTH = H100_HBM_BYTES_PER_S * BANDWIDTH_EFFICIENCY

H100_LLAMA3_8B = StepCostModel(
    # Every step streams all weights from HBM once: 16.1 GB / 2.68 TB/s = 6.0 ms, the
    # floor of a decode step (one sequence alone: at most ~165 tokens/s).
    base_s=LLAMA3_8B_WEIGHT_BYTES / _EFFECTIVE_BANDWIDTH,
    # 16.1 GFLOP per prompt token at 40% of 989 TFLOPS: 41 us, ~25k prefill tokens/s.
    prefill_token_s=LLAMA3_8B_FLOPS_PER_TOKEN / (H100_DENSE_BF16_FLOPS * PREFILL_FLOPS_EFFICIENCY),
    # The same 16.1 GFLOP per decoded token at 30%: 54 us per running sequence.
    decode_seq_s=LLAMA3_8B_FLOPS_PER_TOKEN / (H100_DENSE_BF16_FLOPS * DECODE_FLOPS_EFFICIENCY),
    # Attention reads 128 KiB of KV per context token: 49 ns per token per step.
    context_token_s=LLAMA3_8B_KV_BYTES_PER_TOKEN / _EFFECTIVE_BANDWIDTH,
)
"""Step cost of Llama 3 8B (bf16) on one H100 SXM5 under vLLM: derived estimates."""

_BLOCK_SIZE = 16
_KV_BYTES = (
    H100_MEMORY_BYTES * GPU_MEMORY_UTILIZATION - LLAMA3_8B_WEIGHT_BYTES - NON_KV_OVERHEAD_BYTES
)

H100_LLAMA3_8B_ENGINE = SimEngineConfig(
    max_num_seqs=1024,
    # (81,559 MiB x 0.92 - 16.1 GB weights - 4 GB) / (16 tokens x 128 KiB): ~28.0k
    # blocks, ~447k tokens of KV cache.
    num_kv_blocks=int(_KV_BYTES // (_BLOCK_SIZE * LLAMA3_8B_KV_BYTES_PER_TOKEN)),
    block_size=_BLOCK_SIZE,
    max_num_batched_tokens=8192,
    enable_prefix_caching=True,
)
"""vLLM's default limits for Llama 3 8B on one H100, with the KV cache size estimated."""
