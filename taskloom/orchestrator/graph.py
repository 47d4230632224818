"""A checked program's dependency graph, and its shape."""

from __future__ import annotations

from dataclasses import dataclass, field

import networkx as nx

from taskloom.program.models import Program


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
