"""What a vLLM server's Prometheus page (`/metrics`) says about its engine's KV cache.

vLLM publishes its cache configuration as the labels of one gauge,
`vllm:cache_config_info` (one sample per engine of the server), among them
`num_gpu_blocks` and `block_size`; their product is the tokens the engine's KV cache
holds. Other servers have no such gauge, and then nothing is known."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

METRICS_PATH = "/metrics"
CACHE_CONFIG_INFO = "vllm:cache_config_info"


def kv_capacity_from_metrics(text: str) -> int | None:
    """Tokens of KV over all of the server's engines, or None if the page does not say
    (not vLLM, or labels that are missing or not whole numbers)."""
    total = 0
    try:
        families = list(text_string_to_metric_families(text))
    except ValueError:  # not Prometheus text
        return None
    for family in families:
        # The parser names an info-style gauge by its sample name, minus any suffix.
        if family.name != CACHE_CONFIG_INFO:
            continue
        for sample in family.samples:
            blocks, block_size = (sample.labels.get(key, "") for key in
                                  ("num_gpu_blocks", "block_size"))
            if not (blocks.isdigit() and block_size.isdigit()):
                return None
            total += int(blocks) * int(block_size)
    return total or None
