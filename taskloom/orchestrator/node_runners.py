"""How each node kind turns its rendered templates into work: LLM calls, tool calls, maps.

The executor owns ordering, retries and status; these functions only do one attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import jsonschema

from taskloom.backends.base import GenerateRequest, Message, SamplingParams
from taskloom.errors import TaskloomError
from taskloom.orchestrator.certainty.node import run_certainty_llm, uses_certainty
from taskloom.orchestrator.result import NodeResult
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.program import schemas
from taskloom.program.models import Defaults, LLMNode, MapNode, ToolNode
from taskloom.program.refs import evaluate_condition, render_template, render_value
from taskloom.tools.registry import ToolRegistry


class NodeOutputError(TaskloomError):
    """An LLM answer that does not fit the node's declared output schema."""


class MapInputError(TaskloomError):
    """A `map` whose `over` did not evaluate to a list."""


@dataclass
class CallUsage:
    """Token counts and call ids of one node, added up over its LLM calls."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_prompt_tokens: int = 0
    llm_calls: int = 0
    call_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NodeEnvironment:
    """What a node needs from the run it belongs to."""

    run_id: str
    node_id: str
    scheduler: Scheduler
    tools: ToolRegistry
    defaults: Defaults
    parent_call_ids: tuple[str, ...] = ()
    attempt: int = 1
    # Nodes that appear while the run goes on (the tasks of a planner's plan) are
    # reported here so that they show in the result and trace with their own timings.
    report_subtask: Callable[[NodeResult], None] = field(default=lambda result: None)
    # Seconds since the run started, on the run's clock (virtual under the simulator).
    clock: Callable[[], float] = field(default=lambda: 0.0)


async def run_llm(
    node: LLMNode, context: Mapping[str, Any], env: NodeEnvironment, usage: CallUsage,
    call_suffix: str = "",
) -> Any:
    messages = _render_messages(node, context)
    samples: list[Any] = [None] * node.n

    def request_for(index: int) -> GenerateRequest:
        call_id = f"{env.run_id}/{env.node_id}{call_suffix}/a{env.attempt}/s{index}"
        return GenerateRequest(
            call_id=call_id,
            messages=messages,
            sampling=_sampling(node, env.defaults, index),
            json_schema_text=GenerateRequest.schema_text(node.output_schema),
            model=node.model or env.defaults.model,
            program_id=env.run_id,
            thread_id=f"{env.node_id}{call_suffix}/s{index}",
            parent_call_ids=env.parent_call_ids,
        )

    if uses_certainty(node):  # self-consistency vote, early stopping, probing
        return await run_certainty_llm(node, request_for, env.scheduler, usage)

    async def one_sample(index: int) -> None:
        request = request_for(index)
        samples[index] = await _complete(request, env.scheduler, usage, node.output_schema)

    async with anyio.create_task_group() as group:
        for index in range(node.n):
            group.start_soon(one_sample, index)
    return samples[0] if node.n == 1 else samples


async def run_tool(node: ToolNode, context: Mapping[str, Any], env: NodeEnvironment) -> Any:
    tool = env.tools.get(node.tool)
    args = render_value(node.args, context)
    return await tool.call(args)


async def run_map(
    node: MapNode, context: Mapping[str, Any], env: NodeEnvironment, usage: CallUsage
) -> list[Any]:
    items = render_value(node.over, context)
    if not isinstance(items, list):
        raise MapInputError(
            f"map 'over' must give a list, got {type(items).__name__}: {_preview(items)}"
        )
    results: list[Any] = [None] * len(items)
    limiter = anyio.CapacityLimiter(node.max_parallel or max(1, len(items)))

    async def one_item(index: int, item: Any) -> None:
        async with limiter:
            inner = {**context, node.item_name: item, "index": index}
            body = node.node
            if body.when is not None and not evaluate_condition(body.when, inner):
                return  # this item is skipped; its slot stays None
            if isinstance(body, LLMNode):
                results[index] = await run_llm(body, inner, env, usage, call_suffix=f"[{index}]")
            else:
                results[index] = await run_tool(body, inner, env)

    async with anyio.create_task_group() as group:
        for index, item in enumerate(items):
            group.start_soon(one_item, index, item)
    return results


def _render_messages(node: LLMNode, context: Mapping[str, Any]) -> tuple[Message, ...]:
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


async def _complete(
    request: GenerateRequest,
    scheduler: Scheduler,
    usage: CallUsage,
    schema: dict[str, Any] | None,
) -> Any:
    parts: list[str] = []
    usage.llm_calls += 1
    usage.call_ids.append(request.call_id)
    prompt = generated = cached = 0
    try:
        async with aclosing(scheduler.submit(request)) as stream:
            async for chunk in stream:
                parts.append(chunk.text)
                prompt, generated = chunk.prompt_tokens, chunk.generated_tokens
                cached = chunk.cached_prompt_tokens
    finally:
        # Count what was spent even when the call failed or was cancelled part-way.
        usage.prompt_tokens += prompt
        usage.generated_tokens += generated
        usage.cached_prompt_tokens += cached
    text = "".join(parts)
    return text if schema is None else _parse_json_output(text, schema)


def _parse_json_output(text: str, schema: dict[str, Any]) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeOutputError(
            f"the model's answer is not valid JSON ({exc.msg} at char {exc.pos}): "
            f"{_preview(text)}; if it was cut off, raise max_tokens"
        ) from exc
    try:
        schemas.validate(value, schema)
    except jsonschema.ValidationError as exc:
        raise NodeOutputError(
            f"the model's JSON does not match output_schema: {exc.message}"
        ) from None
    return value


def _preview(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
