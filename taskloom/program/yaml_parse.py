"""YAML text to plain data and a SourceMap, with every PyYAML problem located.

Hostile YAML is refused before it can cost much: while composing, the loader bounds
nesting depth and alias expansion (a "billion laughs" file expands nine aliases nine
levels deep) and refuses an alias inside the node it names, each at the event that
crosses the line. Its constructors report bad tagged values (`!!int abc`,
`!!timestamp 2020-13-45`) and oversized integers at their mark instead of raising
ValueError.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError

from taskloom.errors import SourceLocation, SpecError
from taskloom.program.source_map import SourceMap, index_positions, mark_location

# Deeper than any real spec (a JSON schema a dozen levels deep is already unusual), and
# shallow enough that the recursive composer, Pydantic and jsonschema stay far from
# Python's recursion limit.
MAX_DEPTH = 64
# How many values all `*alias` uses of a spec may copy in, counted after expansion.
MAX_ALIAS_EXPANSION = 10_000
# Integers longer than this are refused rather than carried through validation,
# where printing them (in a message, in JSON) would hit Python's int-str limit.
MAX_INTEGER_DIGITS = 1000
_INTEGER_CEILING = 10**MAX_INTEGER_DIGITS


@dataclass(frozen=True)
class ParsedYaml:
    """A spec's data, where each value was written, and its duplicate-key problems."""

    data: Any
    source: SourceMap
    duplicates: list[SpecError]


def parse_yaml(text: str, filename: str) -> ParsedYaml:
    """Parse one YAML document; raises a located SpecError for anything PyYAML refuses."""
    try:
        loader = _SpecLoader(text, filename)
    except yaml.reader.ReaderError as exc:
        raise _reader_error(exc, text, filename) from None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, filename) from None
    try:
        root = loader.get_single_node()
        # Duplicates are found before construction, which flattens `<<` merges in place.
        duplicates = _duplicate_keys(root, filename) if root is not None else []
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, filename) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", location=SourceLocation(filename, 1, 1)) from None
    finally:
        loader.dispose()
    return ParsedYaml(data, index_positions(root, filename), duplicates)


# ---------------------------------------------------------------- limits, while composing


def _too_deep(location: SourceLocation) -> SpecError:
    return SpecError(
        f"the spec nests deeper than {MAX_DEPTH} levels here",
        location=location,
        hint="a spec never needs this many levels; flatten this value",
    )


def _alias_bomb(location: SourceLocation) -> SpecError:
    return SpecError(
        f"the spec's aliases expand to more than {MAX_ALIAS_EXPANSION:,} values",
        location=location,
        hint="each `*alias` copies its whole anchor; nested aliases multiply, so use fewer",
    )


def _recursive_alias(anchor: str, location: SourceLocation) -> SpecError:
    return SpecError(
        f"the alias '*{anchor}' is inside the value it names",
        location=location,
        hint="a value cannot contain itself; write the inner value out instead",
    )


# ---------------------------------------------------------------- construction


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded while it composes (nesting depth, alias expansion,
    recursive aliases) and with constructor failures raised as located YAML errors."""

    def __init__(self, text: str, filename: str) -> None:
        super().__init__(text)
        self.filename = filename
        self.depth = 0
        self.open_anchors: set[str] = set()
        self.expanded = 0
        self.sizes: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            self._count_alias(event)
        if not isinstance(event, yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise _too_deep(mark_location(self.filename, event.start_mark))
        self.depth += 1
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.discard(event.anchor or "")

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner reads a flow collection (`[[[...`) ahead of the composer, and its
        # work grows with the square of the flow depth: refuse deep ones here already.
        if self.flow_level >= MAX_DEPTH - 1:  # a spec's flow values sit in its top mapping
            raise _too_deep(mark_location(self.filename, self.get_mark()))
        super().fetch_flow_collection_start(token_class)

    def _count_alias(self, event: yaml.AliasEvent) -> None:
        location = mark_location(self.filename, event.start_mark)
        anchor = event.anchor or ""
        if anchor in self.open_anchors:
            raise _recursive_alias(anchor, location)
        node = self.anchors.get(anchor)
        # An undefined alias is left to the composer, which reports it with its mark.
        self.expanded += _expanded_size(node, self.sizes) if node is not None else 0
        if self.expanded > MAX_ALIAS_EXPANSION:
            raise _alias_bomb(location)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            value = super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # ValueError, AttributeError... from a scalar constructor
            raise ConstructorError(
                None, None, f"cannot read {_tag_name(node.tag)} value: {exc}", node.start_mark
            ) from None
        if isinstance(value, int) and _too_many_digits(value):
            raise ConstructorError(
                None, None, f"an integer with more than {MAX_INTEGER_DIGITS} digits",
                node.start_mark,
            )
        return value


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many values `node` holds once its aliases are expanded (memoised, so shared
    nodes are counted without being walked again)."""
    if id(node) not in sizes:
        children: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        sizes[id(node)] = 1 + sum(_expanded_size(child, sizes) for child in children)
    return sizes[id(node)]


def _tag_name(tag: str) -> str:
    short = tag.removeprefix("tag:yaml.org,2002:")
    return f"this !!{short}" if short != tag else f"this {tag}"


def _too_many_digits(value: int) -> bool:
    # Comparing magnitudes never converts to text, so it is safe at any size.
    return bool(abs(value) >= _INTEGER_CEILING)


# ---------------------------------------------------------------- error messages


def _reader_error(exc: yaml.reader.ReaderError, text: str, filename: str) -> SpecError:
    position = max(0, min(exc.position, len(text)))
    line = text.count("\n", 0, position) + 1
    column = position - (text.rfind("\n", 0, position) + 1) + 1
    character = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return SpecError(
        f"invalid YAML: the control character {character!r} is not allowed in a spec",
        location=SourceLocation(filename, line, column),
        hint='remove it; inside a double-quoted string it can be written as an escape, e.g. "\\t"',
    )


def _yaml_error(exc: yaml.MarkedYAMLError, filename: str) -> SpecError:
    location = mark_location(filename, exc.problem_mark or exc.context_mark)
    problem = exc.problem or exc.context or "cannot parse"
    if exc.context and problem.startswith("but "):
        # PyYAML splits "expected X, but found Y" across context and problem.
        problem = f"{exc.context}, {problem}"
    return SpecError(f"invalid YAML: {problem}", location=location, hint=_yaml_hint(exc))


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = f"{exc.problem or ''} {exc.context or ''}"
    if "unhashable key" in problem or "found unexpected '{'" in problem:
        return 'a value that starts with "{{" must be quoted: prompt: "{{ inputs.topic }}"'
    if "'\\t'" in problem or "tab" in problem:
        return "YAML does not allow tabs for indentation; use spaces"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or written as a block with '|'"
    if "expected a single document" in problem:
        return "a spec file holds one program; remove the extra '---'"
    if "constructor for the tag" in problem:
        return "a spec holds plain data; remove the `!!` or `!` tag"
    if "cannot read" in problem or "digits" in problem:
        return "quote the value to keep it as text, or fix it"
    return "check the indentation and quoting around this line"


def _duplicate_keys(root: yaml.Node, filename: str) -> list[SpecError]:
    found: list[SpecError] = []
    for mapping in _mappings(root, set()):
        seen: set[str] = set()
        for key_node, _ in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                found.append(
                    SpecError(
                        f"duplicate key '{key_node.value}'",
                        location=mark_location(filename, key_node.start_mark),
                        hint="YAML keeps only the last one; rename or remove one of them",
                    )
                )
            seen.add(key_node.value)
    return found


def _mappings(node: yaml.Node, visiting: set[int]) -> Iterator[yaml.MappingNode]:
    if id(node) in visiting:  # a node reached again through an alias
        return
    visiting.add(id(node))
    if isinstance(node, yaml.MappingNode):
        yield node
        for key_node, value_node in node.value:
            yield from _mappings(key_node, visiting)
            yield from _mappings(value_node, visiting)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _mappings(item, visiting)
