"""Make a backend by name: the one place that knows every kind of engine.

    async with open_backend("vllm", max_num_seqs=8) as engine:
        ...

`open_backend` checks the settings at once and returns the backend unopened; the
`async with` block opens it and closes it (see `taskloom.backends.lifecycle`).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from taskloom.backends.lifecycle import ManagedBackend
from taskloom.backends.openai_http import OpenAIBackend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.errors import TaskloomError
from taskloom.naming import unknown_name_message


class BackendName(StrEnum):
    """Every backend taskloom can open, by the name users type."""

    VLLM = "vllm"
    OPENAI = "openai"
    SIM = "sim"
    SCRIPTED = "scripted"


class BackendSettingsError(TaskloomError, ValueError):
    """Backend settings that cannot work (an unknown name, a missing `base_url`); found
    before anything is started."""


def backend_name(text: str) -> BackendName:
    """The `BackendName` spelled `text`, or a `BackendSettingsError` suggesting one."""
    try:
        return BackendName(text)
    except ValueError:
        known = [name.value for name in BackendName]
        raise BackendSettingsError(unknown_name_message("backend", text, known)) from None


def open_backend(
    name: BackendName | str,
    *,
    model: str | Path | None = None,
    base_url: str | None = None,
    **options: Any,
) -> ManagedBackend:
    """The backend called `name`, not yet open: use it as `async with`.

    - "vllm": an in-process engine on `model`; no model means the embedded SmolLM2.
      `options` go to `VLLMBackend` (max_num_seqs, max_model_len, ...).
    - "openai": a server at `base_url` (required); no model means the first one it
      serves. `options` go to `OpenAIBackend` (api_key, max_in_flight, timeout_s).
    - "sim": the simulated engine on virtual time; `options` go to `SimBackend`
      (config, cost, output_tokens, stream_interval, fast_forward); `model` is ignored.
    - "scripted": the test double; `options` go to `ScriptedBackend`; `model` is ignored.

    Raises `BackendSettingsError` for an unknown name or a `base_url` that is missing
    (openai) or meaningless (every other backend).
    """
    kind = backend_name(name)
    check_base_url(kind, base_url)
    if kind is BackendName.VLLM:
        return VLLMBackend(model, **options)
    if kind is BackendName.OPENAI:
        assert base_url is not None
        return OpenAIBackend(base_url, None if model is None else str(model), **options)
    if kind is BackendName.SIM:
        return SimBackend(**options)
    return ScriptedBackend(**options)


def check_base_url(name: BackendName, base_url: str | None) -> None:
    """Refuse a missing `base_url` for openai, and a stray one for any other backend."""
    if name is BackendName.OPENAI and not base_url:
        raise BackendSettingsError(
            "the openai backend needs a server URL: pass --base-url (base_url=), "
            "e.g. http://127.0.0.1:8000"
        )
    if name is not BackendName.OPENAI and base_url:
        raise BackendSettingsError(
            f"base_url is for the openai backend only; the {name} backend does not use it"
        )
