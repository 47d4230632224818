"""The static checks of a program: one walk that collects located errors and the
dependency edges.

What is common to every node (ids, `after`, `when`, references in templates, cycles,
the policy name) is checked here; what a kind knows about its own fields is checked by
its `NodeKind.check`, through the `NodeChecks` interface this class implements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jsonschema
import networkx as nx

from taskloom.errors import SourceLocation, SpecError
from taskloom.naming import did_you_mean
from taskloom.orchestrator.kinds.base import JsonSchema, SpecPath, TemplateSite, node_sites
from taskloom.orchestrator.scheduler.registry import UnknownPolicy, check_policy
from taskloom.orchestrator.schema_paths import FieldProblem, format_reference, schema_at
from taskloom.program.load import SourceMap
from taskloom.program.models import LLMNode, Node, Program
from taskloom.program.refs import (
    TEMPLATE_GLOBALS,
    RefPath,
    TemplateError,
    expression_references,
    template_references,
)
from taskloom.program.schemas import check_schema

if TYPE_CHECKING:
    from taskloom.orchestrator.kinds.registry import NodeKindRegistry
    from taskloom.orchestrator.tool_catalog import ToolCatalog


class ProgramChecker:
    """Walks one program once, collecting located errors and the dependency edges."""

    def __init__(
        self, program: Program, tools: ToolCatalog | None, kinds: NodeKindRegistry
    ) -> None:
        self._program = program
        self._tools = tools
        self._kinds = kinds
        source = program._source
        self.source = source if isinstance(source, SourceMap) else None
        self.errors: list[SpecError] = []
        self.needs: dict[str, dict[str, str]] = {node_id: {} for node_id in program.nodes}

    # -- what kinds may read (NodeChecks)

    @property
    def program(self) -> Program:
        return self._program

    @property
    def tools(self) -> ToolCatalog | None:
        return self._tools

    @property
    def kinds(self) -> NodeKindRegistry:
        return self._kinds

    def build_graph(self) -> nx.DiGraph:
        for node_id, node in self.program.nodes.items():
            self._check_node(node_id, node)
        for name, template in self.program.outputs.items():
            self._check_site(TemplateSite(("outputs", name), template), owner=None)
        self._check_policy()
        graph = self._graph()
        self._check_cycles(graph)
        return graph

    # -- reporting

    def report(
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
            self.report(str(error), ("policy",), node=None)

    # -- nodes

    def _check_node(self, node_id: str, node: Node) -> None:
        path: SpecPath = ("nodes", node_id)
        self._check_node_id(node_id)
        for after_index, upstream in enumerate(node.after):
            self.check_after(node_id, upstream, (*path, "after", after_index))
        self.kinds.get(node.kind).check(node_id, node, path, self)
        for site in node_sites(node, path, frozenset(), self.kinds):
            self._check_site(site, owner=node_id)

    def _check_node_id(self, node_id: str) -> None:
        if node_id in TEMPLATE_GLOBALS:
            self.report(
                f"node id '{node_id}' hides the template function '{node_id}'",
                ("nodes", node_id),
                node=node_id,
                hint="rename the node",
                at_key=True,
            )

    def check_after(self, node_id: str, upstream: str, path: SpecPath) -> None:
        if upstream in self.program.nodes:
            self.needs[node_id].setdefault(upstream, "after")
            return
        self.report(
            f"`after` names unknown node '{upstream}'",
            path,
            node=node_id,
            hint=did_you_mean(upstream, list(self.program.nodes)) or self._known_nodes_hint(),
        )

    def check_output_schema(self, node_id: str, schema: JsonSchema, path: SpecPath) -> None:
        try:
            check_schema(schema)
        except jsonschema.SchemaError as exc:
            self.report(
                f"output_schema is not a valid JSON schema: {exc.message}",
                path,
                node=node_id,
                hint="e.g. {type: object, properties: {title: {type: string}}}",
            )

    # -- references

    def _check_site(self, site: TemplateSite, owner: str | None) -> None:
        try:
            if site.is_condition:
                references = expression_references(site.text)
            else:
                references = template_references(site.text)
        except TemplateError as exc:
            where = f" (line {exc.line} of the template)" if exc.line and exc.line > 1 else ""
            self.report(
                f"{exc}{where}",
                site.path,
                node=owner,
                hint="templates are Jinja: {{ name.field }}, {% if %}...{% endif %}",
            )
            return
        for reference in references:
            self._check_reference(reference, site, owner)

    def _check_reference(self, reference: RefPath, site: TemplateSite, owner: str | None) -> None:
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
            self.report(
                f"'{root}' is not a node or `inputs`",
                site.path,
                node=owner,
                hint=did_you_mean(root, names) or self._known_nodes_hint(),
            )

    def _check_input_reference(
        self, reference: RefPath, site: TemplateSite, owner: str | None
    ) -> None:
        if len(reference) < 2:
            return  # the whole inputs mapping
        name = reference[1]
        if isinstance(name, str) and name in self.program.inputs:
            self._check_fields(reference, site, owner)
            return
        inputs = list(self.program.inputs)
        self.report(
            f"unknown input '{name}'",
            site.path,
            node=owner,
            hint=did_you_mean(str(name), inputs)
            or f"declare it under `inputs:` (declared: {', '.join(inputs) or 'none'})",
        )

    def _check_fields(self, reference: RefPath, site: TemplateSite, owner: str | None) -> None:
        schema, prefix = self._root_schema(reference)
        if schema is None:
            return
        found = schema_at(schema, reference[prefix:])
        if not isinstance(found, FieldProblem):
            return
        reached = format_reference(reference[: prefix + found.depth])
        key = reference[prefix + found.depth]
        self.report(
            f"{reached} {found.message}",
            site.path,
            node=owner,
            hint=self._field_hint(reference, key, found),
        )

    def _field_hint(self, reference: RefPath, key: str | int, found: FieldProblem) -> str:
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
        node = self.program.nodes[root]
        return self.kinds.get(node.kind).output_schema(node, self.kinds), 1

    def schema_of(self, reference: RefPath) -> JsonSchema | None:
        root = str(reference[0])
        known = root == "inputs" and len(reference) > 1 and reference[1] in self.program.inputs
        if not known and root not in self.program.nodes:
            return None
        schema, prefix = self._root_schema(reference)
        found = None if schema is None else schema_at(schema, reference[prefix:])
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
        # One cycle per strongly connected component: linear overall, where finding and
        # removing cycles one at a time was quadratic in a long chain of them.
        rank = {node_id: position for position, node_id in enumerate(self.program.nodes)}
        tangles = [
            sorted(component, key=rank.__getitem__)
            for component in nx.strongly_connected_components(graph)
            if len(component) > 1 or any(graph.has_edge(n, n) for n in component)
        ]
        for tangle in sorted(tangles, key=lambda nodes: rank[nodes[0]]):
            edges = nx.find_cycle(graph.subgraph(tangle), source=tangle[0])
            cycle = [u for u, _ in edges]
            start = min(range(len(cycle)), key=lambda i: rank[cycle[i]])
            cycle = cycle[start:] + cycle[:start]
            self.report(
                f"dependency cycle: {' -> '.join([*cycle, cycle[0]])}",
                ("nodes", cycle[0]),
                node=cycle[0],
                at_key=True,
                hint="a node cannot wait for its own output; remove one of these "
                "references or `after` entries",
            )
