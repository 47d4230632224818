#!/usr/bin/env bash
# Lint, type-check, then the tests. The suite runs as three pytest sessions because each
# keeps to its own vLLM engines: the in-process engine, then OpenAI-compatible servers,
# then engine replicas as Ray actors.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 VLLM_CPU_KVCACHE_SPACE=1
.venv/bin/ruff check taskloom tests benchmarks
.venv/bin/mypy taskloom
.venv/bin/pytest -m "not openai_server and not ray" "$@"
.venv/bin/pytest -m openai_server "$@"
.venv/bin/pytest -m ray "$@"
