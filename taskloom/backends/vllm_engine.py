"""The in-process vLLM engine (V1 `AsyncLLM`) behind the `Backend` seam.

AsyncLLM is asyncio-only, so this backend runs under anyio's asyncio backend (the rest
of taskloom also runs on trio). vLLM is imported lazily, so importing taskloom never
pays for it.
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.cpu_dtype import choose_engine_dtype
from taskloom.backends.embedded import ensure_embedded_model
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.errors import BackendError


def apply_cpu_engine_env(kv_cache_gib: int) -> None:
    """Defaults for vLLM's CPU build; a value the user already exported wins."""
    # vLLM's CPU build otherwise reserves a core for itself; on a 2-core machine the
    # model would get one.
    os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class _TokenTally:
    """Turns vLLM's DELTA outputs into chunks with cumulative token counts."""

    generated_tokens: int = 0

    def chunk(self, output: Any) -> Chunk:
        completion = output.outputs[0]
        self.generated_tokens += len(completion.token_ids)
        return Chunk(
            text=completion.text,
            prompt_tokens=len(output.prompt_token_ids or ()),
            generated_tokens=self.generated_tokens,
            cached_prompt_tokens=getattr(output, "num_cached_tokens", None) or 0,
            finished=bool(output.finished),
            finish_reason=completion.finish_reason,
        )


class VLLMBackend(ManagedBackend):
    """One vLLM engine in this process: `async with VLLMBackend(model, ...) as engine:`
    (or `open_backend("vllm", ...)`) starts it, and leaving the block shuts it down.

    `model` is a Hugging Face model folder or hub name; None means the embedded
    SmolLM2-135M (converted on first use, about 20 s, in a worker thread). Starting
    blocks the event loop (about 25 s for the embedded model on two CPU cores with
    `enforce_eager`; about 100 s without it). `kv_cache_gib` bounds the KV cache of
    vLLM's CPU build (a GPU build sizes its cache from free GPU memory instead).
    `dtype` None chooses by the machine (`cpu_dtype.choose_dtype`: float32 on a CPU
    without native bf16, where bfloat16 is about 3x slower); `dtype_choice` says which
    and why. `engine_options` go to vLLM's `AsyncEngineArgs` unchanged.

    The engine serves one model, so `GenerateRequest.model` is ignored here. Run it
    under anyio's asyncio backend.
    """

    name = "vllm"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        max_num_seqs: int = 16,
        max_model_len: int = 2048,
        enforce_eager: bool = True,
        kv_cache_gib: int = 1,
        seed: int = 0,
        dtype: str | None = None,
        **engine_options: Any,
    ) -> None:
        self._engine: Any | None = None  # the AsyncLLM, while open
        self.dtype_choice = choose_engine_dtype(dtype)
        self.model = "" if model is None else str(model)
        self._max_num_seqs = max_num_seqs
        self._kv_cache_gib = kv_cache_gib
        self._engine_args: dict[str, Any] = {
            "max_num_seqs": max_num_seqs,
            "max_model_len": max_model_len,
            "enforce_eager": enforce_eager,
            "seed": seed,
            "dtype": self.dtype_choice.dtype,
            **engine_options,
        }
        self._request_ids: set[str] = set()

    async def _open(self, context: AsyncExitStack) -> None:
        if not self.model:
            # The first call converts the embedded model (about 20 s); keep the loop free.
            self.model = str(await anyio.to_thread.run_sync(ensure_embedded_model))
        apply_cpu_engine_env(self._kv_cache_gib)
        self._engine = start_engine(self.model, self._engine_args)

    def capacity(self) -> int:
        return self._max_num_seqs

    def kv_capacity_tokens(self) -> int | None:
        """KV blocks times tokens per block, as the open engine sized them."""
        config = None if self._engine is None else self._engine.vllm_config.cache_config
        if config is None or not config.num_gpu_blocks:
            return None
        return int(config.num_gpu_blocks) * int(config.block_size)

    async def _release(self) -> None:
        """Stop the engine processes. Blocks the event loop for a few seconds: vLLM's
        shutdown closes sockets the loop polls, so it cannot move to a thread."""
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.shutdown()
            # AsyncLLM.__del__ shuts down again. If a stray reference (an abandoned
            # stream, a stored traceback) keeps the engine alive until interpreter exit,
            # that second shutdown fails noisily on half-torn-down modules.
            engine.shutdown = _already_shut_down

    def in_flight_request_ids(self) -> frozenset[str]:
        """Ids of the requests the engine still tracks, as given to it (the call id, or
        the call id plus `~n` when that id was already in flight)."""
        if self._engine is None:
            return frozenset()
        states = self._engine.output_processor.request_states.values()
        return frozenset(state.external_req_id for state in states)

    def num_unfinished_requests(self) -> int:
        return 0 if self._engine is None else int(self._engine.get_num_unfinished_requests())

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self._require_open()
        engine = self._engine
        assert engine is not None  # open means started
        prompt = _render_prompt(engine, request)
        params = to_vllm_sampling_params(request)
        with self._claim_request_id(request.call_id) as request_id:
            stream = engine.generate(
                prompt, params, request_id, priority=request.priority
            )
            finished = False
            try:
                tally = _TokenTally()
                while (output := await self._next_output(stream, request_id)) is not None:
                    chunk = tally.chunk(output)
                    finished = chunk.finished
                    yield chunk
            finally:
                # Runs on early exit and on cancellation alike; shielded so that a
                # cancelled consumer cannot interrupt the abort that frees the slot.
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
                    if not finished:
                        await engine.abort(request_id)

    async def _next_output(self, stream: AsyncIterator[Any], request_id: str) -> Any:
        try:
            return await anext(stream)
        except StopAsyncIteration:
            return None
        except Exception as error:
            raise _backend_error(error, request_id) from error

    def _claim_request_id(self, call_id: str) -> _ClaimedId:
        return _ClaimedId(self._request_ids, call_id)


def start_engine(model: str, engine_args: dict[str, Any]) -> Any:
    """A started `AsyncLLM` on `model`, scheduling by priority."""
    # vLLM is imported here, not at the top: importing taskloom must not pay for it.
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM  # lazy, as above

    options: dict[str, Any] = {"disable_log_stats": True, **engine_args}
    args = AsyncEngineArgs(model=model, scheduling_policy="priority", **options)
    try:
        return AsyncLLM.from_engine_args(args)
    except Exception as error:
        raise BackendError(f"vLLM engine failed to start on {model}: {error}") from error


def _already_shut_down(timeout: float | None = None) -> None:
    """Stands in for `AsyncLLM.shutdown` once the engine has been shut down."""


def _render_prompt(engine: Any, request: GenerateRequest) -> str:
    """The rendered prompt, then the answer text a preempted attempt already produced."""
    return _render_request_start(engine, request) + request.resume_text


def _render_request_start(engine: Any, request: GenerateRequest) -> str:
    """Raw prompts go as they are; chats through the model's own chat template."""
    if request.prompt is not None:
        return request.prompt
    assert request.messages is not None
    chat = [{"role": m.role, "content": m.content} for m in request.messages]
    try:
        text: str = engine.get_tokenizer().apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True
        )
    except Exception as error:
        raise BackendError(
            f"cannot render call {request.call_id!r} with the model's chat template "
            f"({type(error).__name__}: {error}); send a raw prompt instead"
        ) from error
    return text


class _ClaimedId:
    """A request id unique among this backend's live requests.

    vLLM itself tolerates duplicate ids, but `abort(id)` would then stop every request
    that shares it; a scheduler that resumes a preempted call may reuse its call id.
    """

    def __init__(self, live: set[str], call_id: str) -> None:
        self._live = live
        self.request_id = _first_free(live, call_id)

    def __enter__(self) -> str:
        self._live.add(self.request_id)
        return self.request_id

    def __exit__(self, *exc_info: object) -> None:
        self._live.discard(self.request_id)


def _first_free(live: set[str], call_id: str) -> str:
    return next(rid for rid in _candidate_ids(call_id) if rid not in live)


def _candidate_ids(call_id: str) -> Iterator[str]:
    yield call_id
    n = 2
    while True:
        yield f"{call_id}~{n}"
        n += 1


def to_vllm_sampling_params(request: GenerateRequest) -> Any:
    """Map taskloom's sampling parameters (and JSON schema) onto vLLM's."""
    # Lazy: importing taskloom must not pay for vLLM.
    from vllm.sampling_params import (
        RequestOutputKind,
        SamplingParams,
        StructuredOutputsParams,
    )

    sampling = request.sampling
    schema = request.json_schema
    return SamplingParams(
        max_tokens=sampling.max_tokens,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        seed=sampling.seed,
        stop=list(sampling.stop) or None,
        logprobs=sampling.logprobs,
        structured_outputs=StructuredOutputsParams(json=schema) if schema else None,
        output_kind=RequestOutputKind.DELTA,
    )


def _backend_error(error: Exception, request_id: str) -> BackendError:
    from vllm.v1.engine.exceptions import EngineDeadError  # lazy: vLLM is heavy to import

    if isinstance(error, EngineDeadError):
        return BackendError(
            f"the vLLM engine died while serving request {request_id!r}; "
            "start a new backend (the engine log above has the cause)"
        )
    return BackendError(
        f"vLLM rejected or failed request {request_id!r}: {type(error).__name__}: {error}"
    )
