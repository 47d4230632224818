"""Open a backend by name: the one place that knows every kind of engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args

import anyio

from taskloom.backends.base import Backend

BackendName = Literal["vllm", "openai", "scripted"]
BACKEND_NAMES: tuple[str, ...] = get_args(BackendName)


async def open_backend(
    name: BackendName,
    *,
    model: str | None = None,
    base_url: str | None = None,
    **options: Any,
) -> Backend:
    """Open the backend called `name`.

    - "vllm": an in-process engine on `model`; no model means the embedded SmolLM2.
      `options` go to `VLLMBackend.start` (max_num_seqs, max_model_len, ...).
    - "openai": a server at `base_url`; no model means the first one it serves.
      `options` go to `OpenAIBackend` (api_key, max_in_flight, timeout_s).
    - "scripted": the test double; `options` go to `ScriptedBackend`.
    """
    if name == "vllm":
        return await _open_vllm(model, options)
    if name == "openai":
        return await _open_openai(model, base_url, options)
    if name == "scripted":
        from taskloom.backends.scripted import ScriptedBackend

        return ScriptedBackend(**options)
    raise ValueError(f"unknown backend {name!r}; choose one of: {', '.join(BACKEND_NAMES)}")


async def _open_vllm(model: str | None, options: dict[str, Any]) -> Backend:
    from taskloom.backends.vllm_engine import VLLMBackend

    # The first call converts the embedded model (about 20 s); keep the loop free.
    path = model if model else await anyio.to_thread.run_sync(_embedded_model_path)
    return await VLLMBackend.start(path, **options)


def _embedded_model_path() -> Path:
    from taskloom.backends.embedded import ensure_embedded_model

    return ensure_embedded_model()


async def _open_openai(model: str | None, base_url: str | None,
                       options: dict[str, Any]) -> Backend:
    from taskloom.backends.openai_http import OpenAIBackend

    if not base_url:
        raise ValueError("the openai backend needs base_url, e.g. http://127.0.0.1:8000")
    return await OpenAIBackend.connect(base_url, model, **options)
