#!/usr/bin/env bash
# Lint, type-check, then the tests. The suite runs as two pytest sessions because each
# keeps to one vLLM engine: the in-process engine, then an OpenAI-compatible server.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=1
.venv/bin/ruff check taskloom tests benchmarks
.venv/bin/mypy taskloom
.venv/bin/pytest -m "not openai_server" "$@"
.venv/bin/pytest -m openai_server "$@"
