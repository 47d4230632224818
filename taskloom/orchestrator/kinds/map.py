"""The `map` kind: one node of another kind fanned out over a list, items in parallel."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from taskloom.errors import TaskloomError
from taskloom.orchestrator.kinds.base import (
    JsonSchema,
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    SpecPath,
    TemplateSite,
    node_sites,
    value_sites,
)
from taskloom.orchestrator.llm_call import preview
from taskloom.orchestrator.schema_paths import article, format_reference
from taskloom.program.models import NODE_ID_PATTERN, MapNode
from taskloom.program.refs import (
    RefPath,
    TemplateError,
    evaluate_condition,
    is_templated,
    render_value,
    sole_reference,
)
from taskloom.program.render_deadline import render_off_loop

if TYPE_CHECKING:
    from taskloom.orchestrator.llm_call import CallLedger


class MapInputError(TaskloomError):
    """A `map` whose `over` did not evaluate to a list."""


class MapKind(NodeKind[MapNode]):
    name = "map"
    model = MapNode

    def template_sites(
        self, node: MapNode, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        yield from value_sites(node.over, (*path, "over"), bound)
        inner = bound | {node.item_name, "index"}
        yield from node_sites(node.node, (*path, "node"), inner, kinds)

    def output_schema(self, node: MapNode, kinds: KindLookup) -> JsonSchema | None:
        item = kinds.get(node.node.kind).output_schema(node.node, kinds)
        return {"type": "array"} if item is None else {"type": "array", "items": item}

    def check(self, node_id: str, node: MapNode, path: SpecPath, checks: NodeChecks) -> None:
        _check_item_name(node_id, node.item_name, (*path, "as"), checks)
        if isinstance(node.over, str):
            _check_over(node_id, node.over, (*path, "over"), checks)
        body_path: SpecPath = (*path, "node")
        for index, upstream in enumerate(node.node.after):
            checks.check_after(node_id, upstream, (*body_path, "after", index))
        checks.kinds.get(node.node.kind).check(node_id, node.node, body_path, checks)

    async def run(
        self, node: MapNode, context: Mapping[str, Any], env: NodeEnvironment, ledger: CallLedger
    ) -> list[Any]:
        items = await render_off_loop(render_value, node.over, context)
        if not isinstance(items, list):
            raise MapInputError(
                f"map 'over' must give a list, got {type(items).__name__}: {preview(items)}"
            )
        body = node.node
        body_kind = env.kinds.get(body.kind)
        results: list[Any] = [None] * len(items)
        limiter = anyio.CapacityLimiter(node.max_parallel or max(1, len(items)))

        async def one_item(index: int, item: Any) -> None:
            async with limiter:
                inner = {**context, node.item_name: item, "index": index}
                if body.when is not None and not await render_off_loop(
                        evaluate_condition, body.when, inner):
                    return  # this item is skipped; its slot stays None
                # Each item's calls are named after it: `node[3]` in call and thread ids.
                item_env = dataclasses.replace(env, node_id=f"{env.node_id}[{index}]")
                results[index] = await body_kind.run(body, inner, item_env, ledger)

        async with anyio.create_task_group() as group:
            for index, item in enumerate(items):
                group.start_soon(one_item, index, item)
        return results


def _check_item_name(node_id: str, name: str, path: SpecPath, checks: NodeChecks) -> None:
    if not NODE_ID_PATTERN.match(name):
        problem, hint = f"`as: {name}` is not a name", "use letters, digits and '_'"
    elif name in ("inputs", "index"):
        problem, hint = f"`as: {name}` hides `{name}` inside the map", "pick another name"
    elif name in checks.program.nodes:
        problem = f"`as: {name}` hides node '{name}' inside the map"
        hint = "pick a name that is not a node id"
    else:
        return
    checks.report(problem, path, node=node_id, hint=hint)


def _check_over(node_id: str, over: str, path: SpecPath, checks: NodeChecks) -> None:
    if not is_templated(over):
        checks.report(
            "`over` must be a list, or a template that gives one",
            path,
            node=node_id,
            hint='e.g. over: "{{ inputs.cities }}" or over: [Oslo, Lima]',
        )
        return
    try:
        reference = sole_reference(over)
    except TemplateError:
        return  # reported with the other template errors
    if reference is not None:
        _check_over_is_list(node_id, reference, path, checks)


def _check_over_is_list(
    node_id: str, reference: RefPath, path: SpecPath, checks: NodeChecks
) -> None:
    schema = checks.schema_of(reference)
    kind = schema.get("type") if schema is not None else None
    if not isinstance(kind, str) or kind == "array":
        return  # unknown, or a list: fine
    root = str(reference[0])
    if root == "inputs":
        hint = f"declare input '{reference[1]}' with `type: array`"
    else:
        hint = f"give node '{root}' an output_schema whose type is array"
    checks.report(
        f"`over` must be a list, but {format_reference(reference)} is {article(kind)} {kind}",
        path,
        node=node_id,
        hint=hint,
    )
