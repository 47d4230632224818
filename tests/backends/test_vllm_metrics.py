"""Reading the KV cache's size off a vLLM server's Prometheus page."""

from __future__ import annotations

import pytest

from taskloom.backends.vllm_metrics import kv_capacity_from_metrics

HEADER = ("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n"
          "# TYPE vllm:cache_config_info gauge\n")


def info(blocks: str, size: str = "16", engine: str = "0") -> str:
    return (f'vllm:cache_config_info{{block_size="{size}",cache_dtype="auto",'
            f'engine="{engine}",num_gpu_blocks="{blocks}"}} 1.0\n')


def test_blocks_times_block_size_summed_over_the_servers_engines() -> None:
    assert kv_capacity_from_metrics(HEADER + info("4096")) == 65536
    assert kv_capacity_from_metrics(HEADER + info("100", "32") + info("50", "32", "1")) == 4800


@pytest.mark.parametrize("page", [
    "",
    "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running 0.0\n",
    HEADER + info("None"),  # before the engine has sized its cache
    HEADER + 'vllm:cache_config_info{block_size="16",engine="0"} 1.0\n',
    "<html>not Prometheus {{ at all",
])
def test_a_page_that_does_not_say_gives_none(page: str) -> None:
    assert kv_capacity_from_metrics(page) is None
