"""Writes a compiled program's DAG as Mermaid, DOT, SVG or PNG."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from taskloom.errors import TaskloomError
from taskloom.orchestrator.compile import TaskGraph


class UnknownFormat(TaskloomError):
    """The output file's extension names no format we can write."""


def to_mermaid(graph: TaskGraph) -> str:
    lines = ["flowchart TD"]
    for node_id, node in graph.program.nodes.items():
        label = f"{node_id}<br/>{node.kind}"
        lines.append(f'    {node_id}["{label}"]')
    lines.extend(f"    {u} --> {v}" for u, v in graph.graph.edges)
    return "\n".join(lines) + "\n"


def to_dot(graph: TaskGraph) -> str:
    lines = [f'digraph "{graph.program.name}" {{', "  rankdir=TB;", "  node [shape=box];"]
    for node_id, node in graph.program.nodes.items():
        lines.append(f'  {node_id} [label="{node_id}\\n{node.kind}"];')
    lines.extend(f"  {u} -> {v};" for u, v in graph.graph.edges)
    return "\n".join([*lines, "}"]) + "\n"


def to_image(graph: TaskGraph, path: Path) -> None:
    # matplotlib takes a second to import; only PNG output needs it (validate stays fast).
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    layered = graph.graph.copy()
    for level, names in enumerate(nx.topological_generations(layered)):
        for name in names:
            layered.nodes[name]["level"] = level
    positions = nx.multipartite_layout(layered, subset_key="level", align="horizontal")
    # Top to bottom, as the Mermaid and DOT drawings read.
    positions = {n: (x, -y) for n, (x, y) in positions.items()}
    width = max(4.0, 1.6 * graph.stats.widest_level)
    fig, ax = plt.subplots(figsize=(width, max(3.0, 1.2 * graph.stats.levels)))
    labels = {n: f"{n}\n{graph.program.nodes[n].kind}" for n in layered.nodes}
    nx.draw_networkx(layered, positions, ax=ax, labels=labels, node_shape="s",
                     node_color="#dbe9f6", node_size=2200, font_size=8, arrows=True)
    ax.set_title(graph.program.name)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_graph(graph: TaskGraph, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix in (".mmd", ".mermaid", ".md"):
        path.write_text(to_mermaid(graph))
    elif suffix in (".dot", ".gv"):
        path.write_text(to_dot(graph))
    elif suffix in (".svg", ".png"):
        to_image(graph, path)
    else:
        raise UnknownFormat(
            f"cannot write '{path.name}': use .mmd (Mermaid), .dot, .svg or .png"
        )
