"""Programs to checked task graphs.

Compiling reads every template's references off its Jinja AST, turns them (and
`after`) into edges, and checks everything that can be known before a run: names,
fields declared by output schemas, tools and their arguments, list-ness of `map`
sources, cycles. All problems are collected and raised together as SpecErrors, each
located in the spec file when the program was loaded from one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jsonschema
import networkx as nx

from taskloom.errors import SourceLocation, SpecError, SpecErrors
from taskloom.orchestrator.certainty.node import certainty_output_schema
from taskloom.orchestrator.scheduler.registry import UnknownPolicy, check_policy
from taskloom.program.load import SourceMap, did_you_mean
from taskloom.program.models import (
    NODE_ID_PATTERN,
    LLMNode,
    MapNode,
    Node,
    PlanNode,
    Program,
    ToolNode,
)
from taskloom.program.refs import (
    TEMPLATE_GLOBALS,
    RefPath,
    TemplateError,
    expression_references,
    is_templated,
    sole_reference,
    template_references,
)

SpecPath = tuple[str | int, ...]
JsonSchema = dict[str, Any]


# ---------------------------------------------------------------- tool catalog protocol


class ToolLike(Protocol):
    """What the compiler needs to know about one tool. (Read-only properties, so that
    frozen dataclasses and computed schemas both satisfy it.)"""

    @property
    def name(self) -> str: ...

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments (`properties`, `required`)."""
        ...

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        """Problems with the arguments known before the run (templated ones by name only)."""
        ...


class ToolCatalog(Protocol):
    """The tools a program may call, looked up by name (or `module:function`)."""

    def __contains__(self, name: object) -> bool: ...

    def names(self) -> list[str]: ...

    def get(self, name: str) -> ToolLike: ...


# ---------------------------------------------------------------- the graph


@dataclass(frozen=True)
class GraphStats:
    """The shape of a task graph: how much can run at once, and what cannot."""

    node_count: int
    edge_count: int
    levels: int
    widest_level: int
    critical_path: tuple[str, ...]


@dataclass(frozen=True)
class TaskGraph:
    """A checked program and its dependency graph.

    An edge u -> v means v needs u: v reads u's output, or names u in `after`.
    """

    program: Program
    graph: nx.DiGraph = field(repr=False)
    stats: GraphStats

    def dependencies(self, node_id: str) -> tuple[str, ...]:
        """The nodes `node_id` waits for, in program order."""
        self._require(node_id)
        return tuple(self.graph.predecessors(node_id))

    def dependents(self, node_id: str) -> tuple[str, ...]:
        """The nodes that wait for `node_id`, in program order."""
        self._require(node_id)
        return tuple(self.graph.successors(node_id))

    def topological_order(self) -> list[str]:
        """Every node after its dependencies; ties keep program order."""
        return _stable_topological_order(self.graph)

    def _require(self, node_id: str) -> None:
        if node_id not in self.graph:
            raise KeyError(f"no node '{node_id}' in program '{self.program.name}'")


def graph_stats(graph: nx.DiGraph) -> GraphStats:
    """Levels are topological generations: nodes in one level can all run together."""
    generations = [list(g) for g in nx.topological_generations(graph)]
    order = _stable_topological_order(graph)
    longest = nx.dag_longest_path(graph, topo_order=order) if order else []
    return GraphStats(
        node_count=graph.number_of_nodes(),
        edge_count=graph.number_of_edges(),
        levels=len(generations),
        widest_level=max((len(g) for g in generations), default=0),
        critical_path=tuple(longest),
    )


def describe(stats: GraphStats) -> str:
    """One line for the CLI: size, parallelism and the longest chain."""
    path = " -> ".join(stats.critical_path) if stats.critical_path else "(empty)"
    return (
        f"{_plural(stats.node_count, 'node')}, {_plural(stats.edge_count, 'edge')}; "
        f"{_plural(stats.levels, 'level')}, widest {stats.widest_level}; "
        f"critical path ({len(stats.critical_path)}): {path}"
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _stable_topological_order(graph: nx.DiGraph) -> list[str]:
    rank = {node: position for position, node in enumerate(graph.nodes)}
    return list(nx.lexicographical_topological_sort(graph, key=rank.__getitem__))


def compile_program(program: Program, tools: ToolCatalog | None = None) -> TaskGraph:
    """Check `program` and build its task graph; raises SpecErrors listing every problem."""
    checker = _Checker(program, tools)
    graph = checker.build_graph()
    if checker.errors:
        raise SpecErrors(_in_file_order(checker.errors))
    return TaskGraph(program=program, graph=graph, stats=graph_stats(graph))


def _in_file_order(errors: list[SpecError]) -> list[SpecError]:
    def key(error: SpecError) -> tuple[int, int]:
        where = error.location
        return (where.line, where.column) if where is not None else (0, 0)

    return sorted(errors, key=key)


# ---------------------------------------------------------------- where templates are


@dataclass(frozen=True)
class _TemplateSite:
    """One templated string in the spec, and the names bound where it is evaluated."""

    path: SpecPath
    text: str
    is_condition: bool = False
    bound: frozenset[str] = frozenset()


def _node_sites(node: Node, base: SpecPath, bound: frozenset[str]) -> Iterator[_TemplateSite]:
    if node.when is not None:
        yield _TemplateSite((*base, "when"), node.when, is_condition=True, bound=bound)
    if isinstance(node, LLMNode):
        yield from _llm_sites(node, base, bound)
    elif isinstance(node, ToolNode):
        yield from _value_sites(node.args, (*base, "args"), bound)
    elif isinstance(node, PlanNode):
        yield _TemplateSite((*base, "question"), node.question, bound=bound)
    else:
        yield _TemplateSite((*base, "over"), node.over, bound=bound)
        inner = bound | {node.item_name, "index"}
        yield from _node_sites(node.node, (*base, "node"), inner)


def _llm_sites(node: LLMNode, base: SpecPath, bound: frozenset[str]) -> Iterator[_TemplateSite]:
    if node.system is not None:
        yield _TemplateSite((*base, "system"), node.system, bound=bound)
    for index, message in enumerate(node.messages or []):
        yield _TemplateSite((*base, "messages", index, "content"), message.content, bound=bound)
    if node.prompt is not None:
        yield _TemplateSite((*base, "prompt"), node.prompt, bound=bound)


def _value_sites(value: Any, path: SpecPath, bound: frozenset[str]) -> Iterator[_TemplateSite]:
    if isinstance(value, str):
        yield _TemplateSite(path, value, bound=bound)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _value_sites(item, (*path, key), bound)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _value_sites(item, (*path, index), bound)


def _tool_nodes(node_id: str, node: Node) -> Iterator[tuple[SpecPath, ToolNode]]:
    if isinstance(node, ToolNode):
        yield ("nodes", node_id), node
    elif isinstance(node, MapNode) and isinstance(node.node, ToolNode):
        yield ("nodes", node_id, "node"), node.node


def _llm_nodes(node_id: str, node: Node) -> Iterator[tuple[SpecPath, LLMNode]]:
    if isinstance(node, LLMNode):
        yield ("nodes", node_id), node
    elif isinstance(node, MapNode) and isinstance(node.node, LLMNode):
        yield ("nodes", node_id, "node"), node.node


# ---------------------------------------------------------------- what each value is


def _output_schema(node: Node) -> JsonSchema | None:
    """The JSON schema of a node's output; None when it cannot be known before a run."""
    if isinstance(node, LLMNode):
        if (shaped := certainty_output_schema(node)) is not None:
            return shaped  # vote / probe nodes return an object (see certainty.node)
        one: JsonSchema = node.output_schema or {"type": "string"}
        return one if node.n == 1 else {"type": "array", "items": one}
    if isinstance(node, MapNode):
        item = _output_schema(node.node)
        return {"type": "array"} if item is None else {"type": "array", "items": item}
    if isinstance(node, PlanNode):
        return node.output_schema or {"type": "string"}
    return None  # a tool's result is whatever its function returns


@dataclass(frozen=True)
class _FieldProblem:
    """Why a reference path cannot exist in a value of the declared schema."""

    depth: int  # index of the offending key in the reference path
    message: str
    candidates: tuple[str, ...] = ()


def _schema_at(schema: JsonSchema, keys: RefPath) -> JsonSchema | _FieldProblem | None:
    """Walk `keys` into a schema: the schema reached, a problem, or None (unknown)."""
    for position, key in enumerate(keys):
        step = _step_into(schema, key)
        if isinstance(step, str):
            return _FieldProblem(position, step, _property_names(schema))
        if step is None:
            return None
        schema = step
    return schema


def _step_into(schema: JsonSchema, key: str | int) -> JsonSchema | str | None:
    kind = schema.get("type")
    properties = schema.get("properties")
    if isinstance(key, int):
        if kind == "array":
            items = schema.get("items")
            return items if isinstance(items, dict) and items else None
        if kind in ("object", "integer", "number", "boolean"):
            return f"is {_article(kind)} {kind}, not a list, so it has no item [{key}]"
        return None  # strings index by character; untyped is unknown
    if kind == "object" or (kind is None and isinstance(properties, dict)):
        if not isinstance(properties, dict):
            return None
        if key in properties:
            target = properties[key]
            return target if isinstance(target, dict) and target else None
        if schema.get("additionalProperties") not in (None, False):
            return None
        return f"has no field '{key}'"
    if kind in ("string", "integer", "number", "boolean", "array"):
        return f"is {_article(kind)} {kind}, so it has no field '{key}'"
    return None


def _property_names(schema: JsonSchema) -> tuple[str, ...]:
    properties = schema.get("properties")
    return tuple(properties) if isinstance(properties, dict) else ()


def _article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def format_reference(path: RefPath) -> str:
    """`("outline", "sections", 0)` -> `outline.sections[0]`."""
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


# ---------------------------------------------------------------- the checker


class _Checker:
    """Walks one program once, collecting located errors and the dependency edges."""

    def __init__(self, program: Program, tools: ToolCatalog | None) -> None:
        self.program = program
        self.tools = tools
        source = program._source
        self.source = source if isinstance(source, SourceMap) else None
        self.errors: list[SpecError] = []
        self.needs: dict[str, dict[str, str]] = {node_id: {} for node_id in program.nodes}

    def build_graph(self) -> nx.DiGraph:
        for node_id, node in self.program.nodes.items():
            self._check_node(node_id, node)
        for name, template in self.program.outputs.items():
            site = _TemplateSite(("outputs", name), template)
            self._check_site(site, owner=None)
        self._check_policy()
        graph = self._graph()
        self._check_cycles(graph)
        return graph

    # -- reporting

    def _report(
        self,
        message: str,
        path: SpecPath,
        *,
        node: str | None,
        hint: str | None = None,
        at_key: bool = False,
    ) -> None:
        self.errors.append(
            SpecError(message, location=self._locate(path, at_key), node=node, hint=hint)
        )

    def _locate(self, path: SpecPath, at_key: bool) -> SourceLocation | None:
        if self.source is None:
            return None
        return self.source.locate_key(path) if at_key else self.source.locate(path)

    def _check_policy(self) -> None:
        if self.program.policy is None:
            return
        try:
            check_policy(self.program.policy)
        except UnknownPolicy as error:
            self._report(str(error), ("policy",), node=None)

    # -- nodes

    def _check_node(self, node_id: str, node: Node) -> None:
        self._check_node_id(node_id)
        for after_index, upstream in enumerate(node.after):
            self._check_after(node_id, upstream, ("nodes", node_id, "after", after_index))
        if isinstance(node, MapNode):
            self._check_map(node_id, node)
            for after_index, upstream in enumerate(node.node.after):
                after_path = ("nodes", node_id, "node", "after", after_index)
                self._check_after(node_id, upstream, after_path)
        for llm_path, llm in _llm_nodes(node_id, node):
            self._check_llm(node_id, llm, llm_path)
        for tool_path, tool_node in _tool_nodes(node_id, node):
            self._check_tool(node_id, tool_node, tool_path)
        if isinstance(node, PlanNode):
            self._check_plan(node_id, node)
        for site in _node_sites(node, ("nodes", node_id), frozenset()):
            self._check_site(site, owner=node_id)

    def _check_node_id(self, node_id: str) -> None:
        if node_id in TEMPLATE_GLOBALS:
            self._report(
                f"node id '{node_id}' hides the template function '{node_id}'",
                ("nodes", node_id),
                node=node_id,
                hint="rename the node",
                at_key=True,
            )

    def _check_after(self, node_id: str, upstream: str, path: SpecPath) -> None:
        if upstream in self.program.nodes:
            self.needs[node_id].setdefault(upstream, "after")
            return
        self._report(
            f"`after` names unknown node '{upstream}'",
            path,
            node=node_id,
            hint=did_you_mean(upstream, list(self.program.nodes)) or self._known_nodes_hint(),
        )

    def _check_llm(self, node_id: str, node: LLMNode, path: SpecPath) -> None:
        if node.prompt is None and node.messages is None:
            self._report(
                "an llm node needs a `prompt` or `messages`",
                path,
                node=node_id,
                hint='add `prompt: "..."`',
                at_key=True,
            )
        if node.output_schema is not None:
            self._check_output_schema(node_id, node.output_schema, (*path, "output_schema"))

    def _check_output_schema(self, node_id: str, schema: JsonSchema, path: SpecPath) -> None:
        try:
            jsonschema.validators.validator_for(schema).check_schema(schema)
        except jsonschema.SchemaError as exc:
            self._report(
                f"output_schema is not a valid JSON schema: {exc.message}",
                path,
                node=node_id,
                hint="e.g. {type: object, properties: {title: {type: string}}}",
            )

    def _check_map(self, node_id: str, node: MapNode) -> None:
        base: SpecPath = ("nodes", node_id)
        self._check_item_name(node_id, node.item_name, (*base, "as"))
        if not is_templated(node.over):
            self._report(
                "`over` must be a template that gives a list",
                (*base, "over"),
                node=node_id,
                hint='e.g. over: "{{ inputs.cities }}"',
            )
            return
        try:
            reference = sole_reference(node.over)
        except TemplateError:
            return  # reported with the other template errors
        if reference is not None:
            self._check_over_is_list(node_id, reference, (*base, "over"))

    def _check_item_name(self, node_id: str, name: str, path: SpecPath) -> None:
        if not NODE_ID_PATTERN.match(name):
            problem, hint = f"`as: {name}` is not a name", "use letters, digits and '_'"
        elif name in ("inputs", "index"):
            problem, hint = f"`as: {name}` hides `{name}` inside the map", "pick another name"
        elif name in self.program.nodes:
            problem = f"`as: {name}` hides node '{name}' inside the map"
            hint = "pick a name that is not a node id"
        else:
            return
        self._report(problem, path, node=node_id, hint=hint)

    def _check_over_is_list(self, node_id: str, reference: RefPath, path: SpecPath) -> None:
        schema = self._schema_of(reference)
        kind = schema.get("type") if schema is not None else None
        if not isinstance(kind, str) or kind == "array":
            return  # unknown, or a list: fine
        root = str(reference[0])
        if root == "inputs":
            hint = f"declare input '{reference[1]}' with `type: array`"
        else:
            hint = f"give node '{root}' an output_schema whose type is array"
        self._report(
            f"`over` must be a list, but {format_reference(reference)} is {_article(kind)} {kind}",
            path,
            node=node_id,
            hint=hint,
        )

    def _check_tool(self, node_id: str, node: ToolNode, path: SpecPath) -> None:
        if self.tools is None:
            return
        if node.tool not in self.tools:
            names = self.tools.names()
            self._report(
                f"unknown tool '{node.tool}'",
                (*path, "tool"),
                node=node_id,
                hint=did_you_mean(node.tool, names)
                or f"known tools: {', '.join(sorted(names)) or '(none)'}",
            )
            return
        literal = {k: v for k, v in node.args.items() if not is_templated(v)}
        templated = [k for k, v in node.args.items() if is_templated(v)]
        for problem in self.tools.get(node.tool).check_static_args(literal, templated):
            arg = next((a for a in node.args if f"'{a}'" in problem), None)
            where: SpecPath = (*path, "args") if arg is None else (*path, "args", arg)
            self._report(
                f"tool '{node.tool}': {problem}",
                where,
                node=node_id,
                hint=_tool_signature_hint(self.tools.get(node.tool)),
            )

    def _check_plan(self, node_id: str, node: PlanNode) -> None:
        path: SpecPath = ("nodes", node_id)
        if node.output_schema is not None:
            self._check_output_schema(node_id, node.output_schema, (*path, "output_schema"))
        if self.tools is None:
            return
        names = self.tools.names()
        for index, name in enumerate(node.tools):
            if name not in self.tools:
                self._report(
                    f"unknown tool '{name}' in the planner's tools",
                    (*path, "tools", index),
                    node=node_id,
                    hint=did_you_mean(name, names)
                    or f"known tools: {', '.join(sorted(names)) or '(none)'}",
                )

    # -- references

    def _check_site(self, site: _TemplateSite, owner: str | None) -> None:
        try:
            if site.is_condition:
                references = expression_references(site.text)
            else:
                references = template_references(site.text)
        except TemplateError as exc:
            where = f" (line {exc.line} of the template)" if exc.line and exc.line > 1 else ""
            self._report(
                f"{exc}{where}",
                site.path,
                node=owner,
                hint="templates are Jinja: {{ name.field }}, {% if %}...{% endif %}",
            )
            return
        for reference in references:
            self._check_reference(reference, site, owner)

    def _check_reference(self, reference: RefPath, site: _TemplateSite, owner: str | None) -> None:
        root = str(reference[0])
        if root in site.bound:
            return
        if root == "inputs":
            self._check_input_reference(reference, site, owner)
        elif root in self.program.nodes:
            if owner is not None:
                self.needs[owner][root] = "reference"  # says more than a bare `after`
            self._check_fields(reference, site, owner)
        else:
            names = [*self.program.nodes, "inputs", *site.bound]
            self._report(
                f"'{root}' is not a node or `inputs`",
                site.path,
                node=owner,
                hint=did_you_mean(root, names) or self._known_nodes_hint(),
            )

    def _check_input_reference(
        self, reference: RefPath, site: _TemplateSite, owner: str | None
    ) -> None:
        if len(reference) < 2:
            return  # the whole inputs mapping
        name = reference[1]
        if isinstance(name, str) and name in self.program.inputs:
            self._check_fields(reference, site, owner)
            return
        inputs = list(self.program.inputs)
        self._report(
            f"unknown input '{name}'",
            site.path,
            node=owner,
            hint=did_you_mean(str(name), inputs)
            or f"declare it under `inputs:` (declared: {', '.join(inputs) or 'none'})",
        )

    def _check_fields(self, reference: RefPath, site: _TemplateSite, owner: str | None) -> None:
        schema, prefix = self._root_schema(reference)
        if schema is None:
            return
        found = _schema_at(schema, reference[prefix:])
        if not isinstance(found, _FieldProblem):
            return
        reached = format_reference(reference[: prefix + found.depth])
        key = reference[prefix + found.depth]
        self._report(
            f"{reached} {found.message}",
            site.path,
            node=owner,
            hint=self._field_hint(reference, key, found),
        )

    def _field_hint(self, reference: RefPath, key: str | int, found: _FieldProblem) -> str:
        if found.candidates:
            return did_you_mean(str(key), found.candidates) or (
                f"declared fields: {', '.join(found.candidates)}"
            )
        root = str(reference[0])
        node = self.program.nodes.get(root)
        if isinstance(node, LLMNode) and node.output_schema is None:
            return f"node '{root}' has no output_schema, so its output is plain text"
        return "check the output_schema (or input type) it reads from"

    def _root_schema(self, reference: RefPath) -> tuple[JsonSchema | None, int]:
        """The schema the path starts in, and how many path parts name it."""
        root = str(reference[0])
        if root == "inputs":
            return self.program.inputs[str(reference[1])].json_schema(), 2
        return _output_schema(self.program.nodes[root]), 1

    def _schema_of(self, reference: RefPath) -> JsonSchema | None:
        root = str(reference[0])
        known = root == "inputs" and len(reference) > 1 and reference[1] in self.program.inputs
        if not known and root not in self.program.nodes:
            return None
        schema, prefix = self._root_schema(reference)
        found = None if schema is None else _schema_at(schema, reference[prefix:])
        return found if isinstance(found, dict) else None

    def _known_nodes_hint(self) -> str:
        nodes = ", ".join(self.program.nodes) or "none"
        return f"refer to a node id or inputs.<name> (nodes: {nodes})"

    # -- the graph

    def _graph(self) -> nx.DiGraph:
        graph = nx.DiGraph()
        for node_id, node in self.program.nodes.items():
            graph.add_node(node_id, kind=node.kind)
        rank = {node_id: position for position, node_id in enumerate(self.program.nodes)}
        for node_id, needs in self.needs.items():
            # Edges in program order make predecessor/successor listings deterministic.
            for upstream in sorted(needs, key=rank.__getitem__):
                graph.add_edge(upstream, node_id, via=needs[upstream])
        return graph

    def _check_cycles(self, graph: nx.DiGraph) -> None:
        if nx.is_directed_acyclic_graph(graph):  # linear time; find_cycle is far slower
            return
        remaining = graph.copy()
        rank = {node_id: position for position, node_id in enumerate(self.program.nodes)}
        while True:
            try:
                edges = nx.find_cycle(remaining)
            except nx.NetworkXNoCycle:
                return
            cycle = [u for u, _ in edges]
            start = min(range(len(cycle)), key=lambda i: rank[cycle[i]])
            cycle = cycle[start:] + cycle[:start]
            self._report(
                f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}",
                ("nodes", cycle[0]),
                node=cycle[0],
                at_key=True,
                hint="a node cannot wait for its own output; remove one of these "
                "references or `after` entries",
            )
            remaining.remove_edges_from(edges)


def _tool_signature_hint(tool: ToolLike) -> str:
    properties = tool.input_schema.get("properties") or {}
    required = set(tool.input_schema.get("required") or [])
    if not properties:
        return f"tool '{tool.name}' takes no arguments"
    listed = [f"{name}{'' if name in required else '?'}" for name in properties]
    return f"tool '{tool.name}' takes: {', '.join(listed)}"
