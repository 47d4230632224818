"""The one way taskloom checks JSON schemas and validates values against them.

A schema in a spec is untrusted. jsonschema's default registry fetches any `$ref` it
cannot resolve, over HTTP or from `file://` URLs, and quotes what it got in its
errors: a spec could read local files or reach internal hosts. Here a `$ref` resolves
only inside its own document; anything else is a `SchemaError`, raised before any
value is validated, and nothing is ever fetched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import jsonschema
import referencing
import referencing.exceptions
import referencing.jsonschema
from jsonschema.protocols import Validator

from taskloom.errors import TaskloomError

# Keywords whose values are data, not schemas: a `$ref` inside them is just a string.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})
_REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_DIALECT_CLASSES: tuple[type[Validator], ...] = (
    jsonschema.Draft4Validator,
    jsonschema.Draft6Validator,
    jsonschema.Draft7Validator,
    jsonschema.Draft201909Validator,
    jsonschema.Draft202012Validator,
)
# jsonschema's own default when a schema names no `$schema`.
_DEFAULT_DIALECT: type[Validator] = jsonschema.Draft202012Validator


class SchemaError(jsonschema.SchemaError, TaskloomError):  # type: ignore[misc]
    """A JSON schema taskloom will not use: invalid, or reaching outside itself.

    A `jsonschema.SchemaError`, so callers that catch that keep working; its `path`
    is where in the schema the problem is."""

    def __init__(self, message: str, *, path: Iterable[str | int] = ()) -> None:
        jsonschema.SchemaError.__init__(self, message, path=path)


def _refuse_retrieval(uri: str) -> referencing.Resource[Any]:
    # The registry reports this as an unresolvable reference, naming `uri`.
    raise LookupError(f"taskloom fetches no schema ({uri})")


_NO_RETRIEVAL: referencing.Registry[Any] = referencing.Registry(
    retrieve=_refuse_retrieval  # type: ignore[call-arg]  # attrs alias mypy cannot see
)


def _dialect_uri(cls: type[Validator]) -> str:
    meta = cls.META_SCHEMA
    return str(meta.get("$id", meta.get("id", "")))


def _normalized(uri: str) -> str:
    # `http://json-schema.org/draft-07/schema#` and the same without `#` are one dialect.
    return urlsplit(uri).geturl().rstrip("#")


_DIALECTS = {_normalized(_dialect_uri(cls)): cls for cls in _DIALECT_CLASSES}


def check_schema(schema: Any) -> type[Validator]:
    """The validator class for `schema`, once the schema is valid for its dialect and
    every `$ref` in it resolves inside it. Raises `SchemaError` otherwise."""
    if isinstance(schema, bool):
        return _DEFAULT_DIALECT
    if not isinstance(schema, Mapping):
        raise SchemaError(f"a JSON schema must be an object, not {type(schema).__name__}")
    text = _json_text(schema)
    if text is None:
        return _check_mapping(schema)
    return _check_json_text(text)


def _json_text(schema: Mapping[str, Any]) -> str | None:
    """`schema` as JSON text that reads back equal to it (same keys in the same order,
    same values), or None for one that JSON cannot carry exactly (tuples, keys that
    are not strings, NaN, other objects)."""
    try:
        text = json.dumps(schema, allow_nan=False, separators=(",", ":"))
        same = json.loads(text) == schema
    except (TypeError, ValueError, RecursionError):
        return None
    return text if same else None


# Programs declare the same few schemas over and over (every run of a benchmark checks
# its inputs and outputs), and checking one against its meta-schema costs far more than
# writing it out. Only schemas that pass are remembered; one that fails is checked (and
# fails) again.
@functools.lru_cache(maxsize=1024)
def _check_json_text(text: str) -> type[Validator]:
    return _check_mapping(json.loads(text))


def _check_mapping(schema: Mapping[str, Any]) -> type[Validator]:
    cls = _dialect_of(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise SchemaError(exc.message, path=exc.relative_path) from None
    except RecursionError:
        raise SchemaError("the schema nests too deeply to check") from None
    _check_references(schema, cls)
    return cls


def validator_for(schema: Any) -> Validator:
    """A validator for `schema` (checked with `check_schema`) that never fetches."""
    return check_schema(schema)(schema, registry=_NO_RETRIEVAL)


def validate(instance: Any, schema: Any) -> None:
    """As `jsonschema.validate`, without fetching: raises `jsonschema.ValidationError`
    for the best-matching problem with `instance`, `SchemaError` for the schema."""
    validator = validator_for(schema)
    try:
        error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    except referencing.exceptions.Unresolvable as exc:  # a reference check_schema missed
        raise SchemaError(f"cannot resolve $ref {exc.ref!r} inside the schema") from None
    if error is not None:
        raise error


def _dialect_of(schema: Mapping[str, Any]) -> type[Validator]:
    dialect = schema.get("$schema")
    if dialect is None:
        return _DEFAULT_DIALECT
    if not isinstance(dialect, str):
        raise SchemaError(
            f"$schema must be a URI string, not {dialect!r}", path=("$schema",)
        )
    cls = _DIALECTS.get(_normalized(dialect))
    if cls is None:
        known = ", ".join(sorted(_dialect_uri(c) for c in _DIALECT_CLASSES))
        raise SchemaError(f"unknown $schema {dialect!r}; known: {known}", path=("$schema",))
    return cls


def _check_references(schema: Mapping[str, Any], cls: type[Validator]) -> None:
    specification = referencing.jsonschema.specification_with(
        _dialect_uri(cls), default=referencing.jsonschema.DRAFT202012
    )
    root = specification.create_resource(schema)
    root_uri = root.id() or ""
    registry = _NO_RETRIEVAL.with_resource(root_uri, root).crawl()
    resolver = registry.resolver(base_uri=root_uri)
    for path, base, ref in _references(schema, root_uri, specification):
        target = ref if ref.startswith("#") and base == root_uri else urljoin(base, ref)
        try:
            resolver.lookup(target)
        except (referencing.exceptions.PointerToNowhere, referencing.exceptions.NoSuchAnchor):
            raise SchemaError(f"$ref {ref!r} points to nothing in this schema", path=path) from None
        except referencing.exceptions.Unresolvable:
            raise SchemaError(
                f"$ref {ref!r} points outside this schema; taskloom resolves references "
                "only inside the schema itself (e.g. '#/$defs/name') and fetches nothing",
                path=path,
            ) from None


def _references(
    schema: Mapping[str, Any], root_uri: str, specification: referencing.Specification[Any]
) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """(path in the schema, base URI there, reference) for every reference keyword.
    Walks with a stack, not recursion: a schema may nest deeply."""
    stack: list[tuple[Any, tuple[str | int, ...], str]] = [(schema, (), root_uri)]
    while stack:
        node, path, base = stack.pop()
        if isinstance(node, Mapping):
            identifier = specification.id_of(node)
            if isinstance(identifier, str) and path:
                base = urljoin(base, identifier)
            for keyword in _REFERENCE_KEYWORDS:
                if isinstance(node.get(keyword), str):
                    yield (*path, keyword), base, node[keyword]
            stack.extend(
                (value, (*path, key), base)
                for key, value in node.items()
                if key not in _DATA_KEYWORDS
            )
        elif isinstance(node, list):
            stack.extend((value, (*path, index), base) for index, value in enumerate(node))
