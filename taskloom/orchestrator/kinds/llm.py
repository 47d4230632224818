"""The `llm` kind: one LLM call (or n samples, or a vote) on rendered messages."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from taskloom.backends.base import GenerateRequest, Message, SamplingParams
from taskloom.orchestrator.certainty.node import (
    certainty_output_schema,
    run_certainty_llm,
    uses_certainty,
)
from taskloom.orchestrator.kinds.base import (
    JsonSchema,
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    SpecPath,
    TemplateSite,
)
from taskloom.orchestrator.llm_call import complete_text, parse_structured
from taskloom.program.models import Defaults, LLMNode
from taskloom.program.refs import render_template
from taskloom.program.render_deadline import render_off_loop

if TYPE_CHECKING:
    from taskloom.orchestrator.llm_call import CallLedger


class LLMKind(NodeKind[LLMNode]):
    name = "llm"
    model = LLMNode

    def template_sites(
        self, node: LLMNode, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        if node.system is not None:
            yield TemplateSite((*path, "system"), node.system, bound=bound)
        for index, message in enumerate(node.messages or []):
            yield TemplateSite((*path, "messages", index, "content"), message.content, bound=bound)
        if node.prompt is not None:
            yield TemplateSite((*path, "prompt"), node.prompt, bound=bound)

    def output_schema(self, node: LLMNode, kinds: KindLookup) -> JsonSchema | None:
        if (shaped := certainty_output_schema(node)) is not None:
            return shaped  # vote / probe nodes return an object (see certainty.node)
        one: JsonSchema = node.output_schema or {"type": "string"}
        return one if node.n == 1 else {"type": "array", "items": one}

    def check(self, node_id: str, node: LLMNode, path: SpecPath, checks: NodeChecks) -> None:
        if node.prompt is None and node.messages is None:
            checks.report(
                "an llm node needs a `prompt` or `messages`",
                path,
                node=node_id,
                hint='add `prompt: "..."`',
                at_key=True,
            )
        if node.output_schema is not None:
            checks.check_output_schema(node_id, node.output_schema, (*path, "output_schema"))

    async def run(
        self, node: LLMNode, context: Mapping[str, Any], env: NodeEnvironment, ledger: CallLedger
    ) -> Any:
        messages = await render_off_loop(render_messages, node, context)

        def request_for(index: int) -> GenerateRequest:
            return GenerateRequest(
                call_id=f"{env.run_id}/{env.node_id}/a{env.attempt}/s{index}",
                messages=messages,
                sampling=_sampling(node, env.defaults, index),
                json_schema_text=GenerateRequest.schema_text(node.output_schema),
                model=node.model or env.defaults.model,
                program_id=env.run_id,
                thread_id=f"{env.node_id}/s{index}",
                parent_call_ids=env.parent_call_ids,
                keep_warm_s=env.keep_warm_s,
            )

        if uses_certainty(node):  # self-consistency vote, early stopping, probing
            return await run_certainty_llm(node, request_for, env.scheduler, ledger)

        async def sample(index: int) -> Any:
            text = await complete_text(env.scheduler.submit, request_for(index), ledger)
            return parse_structured(text, node.output_schema)

        if node.n == 1:  # the common case needs no task group
            return await sample(0)
        samples: list[Any] = [None] * node.n

        async def one_sample(index: int) -> None:
            samples[index] = await sample(index)

        async with anyio.create_task_group() as group:
            for index in range(node.n):
                group.start_soon(one_sample, index)
        return samples


def render_messages(node: LLMNode, context: Mapping[str, Any]) -> tuple[Message, ...]:
    """The node's system prompt, messages and prompt, rendered, in that order."""
    rendered: list[Message] = []
    if node.system is not None:
        rendered.append(Message("system", render_template(node.system, context)))
    if node.messages is not None:
        rendered.extend(
            Message(m.role, render_template(m.content, context)) for m in node.messages
        )
    if node.prompt is not None:
        rendered.append(Message("user", render_template(node.prompt, context)))
    return tuple(rendered)


def _sampling(node: LLMNode, defaults: Defaults, sample_index: int) -> SamplingParams:
    seed = node.seed if node.seed is not None else defaults.seed
    return SamplingParams(
        max_tokens=node.max_tokens or defaults.max_tokens,
        temperature=node.temperature if node.temperature is not None else defaults.temperature,
        top_p=defaults.top_p,
        # Distinct seeds keep n samples from being n copies of one answer.
        seed=None if seed is None else seed + sample_index,
    )
