"""LLM calls made on behalf of a `plan` node: planner, joiner and ReAct steps.

Every call goes through the run's scheduler, is counted in the node's usage (tokens are
added even when a call is cut short, for instance when the planner stops reading after
`join()`), and names the node's earlier calls as its parents, so a program-aware
scheduler sees one growing thread.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from taskloom.backends.base import GenerateRequest, Message, SamplingParams
from taskloom.orchestrator.node_runners import CallUsage, NodeEnvironment
from taskloom.program.models import Defaults, PlanNode


@dataclass(frozen=True)
class PlannerSettings:
    """Sampling for every call of one plan node: the node's values, else the defaults."""

    model: str | None = None
    max_tokens: int = 512
    temperature: float = 0.0
    seed: int | None = None

    @classmethod
    def for_node(cls, node: PlanNode, defaults: Defaults) -> PlannerSettings:
        return cls(
            model=node.model or defaults.model,
            max_tokens=node.max_tokens or defaults.max_tokens,
            temperature=node.temperature if node.temperature is not None else defaults.temperature,
            seed=node.seed if node.seed is not None else defaults.seed,
        )


class PlanLLM:
    """Makes the LLM calls of one node attempt."""

    def __init__(self, env: NodeEnvironment, usage: CallUsage, settings: PlannerSettings) -> None:
        self.env = env
        self.usage = usage
        self.settings = settings

    def request(
        self,
        purpose: str,
        messages: tuple[Message, ...],
        schema: Mapping[str, Any] | None = None,
        max_tokens: int | None = None,
        stop: tuple[str, ...] = (),
    ) -> GenerateRequest:
        env = self.env
        return GenerateRequest(
            call_id=f"{env.run_id}/{env.node_id}/{purpose}/a{env.attempt}",
            messages=messages,
            sampling=SamplingParams(
                max_tokens=max_tokens or self.settings.max_tokens,
                temperature=self.settings.temperature,
                seed=self.settings.seed,
                stop=stop,
            ),
            json_schema_text=GenerateRequest.schema_text(schema),
            model=self.settings.model,
            program_id=env.run_id,
            thread_id=env.node_id,
            parent_call_ids=(*env.parent_call_ids, *self.usage.call_ids),
        )

    async def stream(self, request: GenerateRequest) -> AsyncGenerator[str, None]:
        """The answer's text as it is generated; closing the stream aborts the call."""
        self.usage.llm_calls += 1
        self.usage.call_ids.append(request.call_id)
        prompt = generated = cached = 0
        try:
            async with aclosing(self.env.scheduler.submit(request)) as chunks:
                async for chunk in chunks:
                    prompt, generated = chunk.prompt_tokens, chunk.generated_tokens
                    cached = chunk.cached_prompt_tokens
                    if chunk.text:
                        yield chunk.text
        finally:
            self.usage.prompt_tokens += prompt
            self.usage.generated_tokens += generated
            self.usage.cached_prompt_tokens += cached

    async def complete(self, request: GenerateRequest) -> str:
        parts: list[str] = []
        async with aclosing(self.stream(request)) as pieces:
            async for piece in pieces:
                parts.append(piece)
        return "".join(parts)
