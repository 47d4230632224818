"""Where each value of a spec was written: YAML paths mapped to lines and columns.

PyYAML's composer keeps a mark for every node; `index_positions` walks the composed
nodes once, before construction, and records where each value and each key starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import yaml

from taskloom.errors import SourceLocation

SpecPath = tuple[str | int, ...]
Position = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a spec was written. Paths are YAML paths such as
    ("nodes", "summary", "prompt"); an unknown path falls back to its nearest parent."""

    file: str
    values: Mapping[SpecPath, Position] = field(default_factory=dict, repr=False, hash=False)
    keys: Mapping[SpecPath, Position] = field(default_factory=dict, repr=False, hash=False)

    def locate(self, path: Sequence[str | int]) -> SourceLocation:
        """Where the value at `path` starts; for a missing path, where its parent is named."""
        wanted = _normal(path)
        if wanted in self.values:
            return self._at(self.values[wanted])
        return self._nearest(wanted[:-1])

    def locate_key(self, path: Sequence[str | int]) -> SourceLocation:
        """Where the key naming `path` is written (`summary:`), else as `locate`."""
        wanted = _normal(path)
        if wanted in self.keys:
            return self._at(self.keys[wanted])
        return self.locate(wanted)

    def _nearest(self, path: SpecPath) -> SourceLocation:
        while path:
            position = self.keys.get(path) or self.values.get(path)
            if position is not None:
                return self._at(position)
            path = path[:-1]
        return self._at(self.values.get((), (1, 1)))

    def _at(self, position: Position) -> SourceLocation:
        return SourceLocation(self.file, position[0], position[1])


def _normal(path: Sequence[str | int]) -> SpecPath:
    # A dict key and a list index never share a parent, so text keys are unambiguous
    # and YAML keys such as `1:` match Pydantic's loc either way.
    return tuple(str(part) for part in path)


def index_positions(root: yaml.Node | None, filename: str) -> SourceMap:
    """A SourceMap of every value and key under `root`.

    A value reached through an alias is indexed under each path that reaches it; the
    parser refuses specs whose aliases expand past a fixed size before they get here,
    so this walk stays as small as the spec's constructed data.
    """
    values: dict[SpecPath, Position] = {}
    keys: dict[SpecPath, Position] = {}

    def visit(node: yaml.Node, path: SpecPath, stack: frozenset[int]) -> None:
        if id(node) in stack:
            return
        values[path] = position_of(node)
        inner = stack | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    child = (*path, str(key_node.value))
                    keys.setdefault(child, position_of(key_node))
                    visit(value_node, child, inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, (*path, str(index)), inner)

    if root is not None:
        visit(root, (), frozenset())
    return SourceMap(file=filename, values=values, keys=keys)


def position_of(node: yaml.Node) -> Position:
    """A node's 1-based line and column."""
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class YamlMark(Protocol):
    """A PyYAML mark (pure-Python or libyaml's): a 0-based line and column."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


def mark_location(filename: str, mark: YamlMark | None) -> SourceLocation:
    """A PyYAML mark as a location; with no mark, the start of the file."""
    if mark is None:
        return SourceLocation(filename, 1, 1)
    return SourceLocation(filename, mark.line + 1, mark.column + 1)
