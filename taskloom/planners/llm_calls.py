"""LLM calls made on behalf of a `plan` node: planner, joiner and ReAct steps.

Every call goes through the run's scheduler, is counted in the node's ledger (tokens are
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
from taskloom.orchestrator.kinds.base import NodeEnvironment
from taskloom.orchestrator.llm_call import CallLedger, complete_text, stream_call
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

    def __init__(self, env: NodeEnvironment, ledger: CallLedger, settings: PlannerSettings) -> None:
        self.env = env
        self.ledger = ledger
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
            parent_call_ids=(*env.parent_call_ids, *self.ledger.call_ids),
        )

    async def stream(self, request: GenerateRequest) -> AsyncGenerator[str, None]:
        """The answer's text as it is generated; closing the stream aborts the call."""
        async with aclosing(stream_call(self.env.scheduler.submit, request, self.ledger)) as chunks:
            async for chunk in chunks:
                if chunk.text:
                    yield chunk.text

    async def complete(self, request: GenerateRequest) -> str:
        return await complete_text(self.env.scheduler.submit, request, self.ledger)
