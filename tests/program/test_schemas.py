from __future__ import annotations

import http.server
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest

from taskloom.errors import SpecError, SpecErrors, TaskloomError
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.llm_call import parse_structured
from taskloom.program.load import loads
from taskloom.program.schemas import SchemaError, check_schema, validate, validator_for

# ---------------------------------------------------------------- a local server to catch fetches


class _Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).requests.append(self.path)
        body = b'{"type": "string", "description": "SECRET-FROM-SERVER"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_server() -> Iterator[tuple[str, list[str]]]:
    """A server on 127.0.0.1 that serves a schema and records every request."""
    _Recorder.requests = []
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/schema.json", _Recorder.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "secret.json"
    path.write_text('{"type": "string", "description": "SECRET-FROM-FILE"}')
    return path.as_uri()


# ---------------------------------------------------------------- the module


def test_local_references_resolve() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/word"}},
        "$defs": {"word": {"type": "string"}},
    }
    validate({"a": "x"}, schema)
    with pytest.raises(jsonschema.ValidationError, match="3 is not of type 'string'"):
        validate({"a": 3}, schema)


def test_a_reference_to_an_embedded_id_is_inside_the_document() -> None:
    schema = {
        "$defs": {"n": {"$id": "https://example.com/n", "type": "integer"}},
        "$ref": "https://example.com/n",
    }
    validate(3, schema)
    with pytest.raises(jsonschema.ValidationError):
        validate("x", schema)


def test_an_older_dialect_is_honoured() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"n": {"type": "integer"}},
        "properties": {"n": {"$ref": "#/definitions/n"}},
    }
    assert check_schema(schema) is jsonschema.Draft7Validator
    validate({"n": 1}, schema)


def test_a_remote_reference_is_refused_and_nothing_is_fetched(
    schema_server: tuple[str, list[str]],
) -> None:
    url, requests = schema_server
    schema = {"properties": {"a": {"$ref": url}}}
    with pytest.raises(SchemaError, match="points outside this schema") as caught:
        check_schema(schema)
    assert list(caught.value.path) == ["properties", "a", "$ref"]
    with pytest.raises(SchemaError):
        validate({"a": 1}, schema)
    with pytest.raises(SchemaError):
        validator_for(schema)
    assert requests == []


def test_a_file_reference_is_refused_and_its_content_never_shows(secret_file: str) -> None:
    with pytest.raises(SchemaError) as caught:
        validate({"a": 1}, {"properties": {"a": {"$ref": secret_file}}})
    assert "SECRET-FROM-FILE" not in str(caught.value)
    assert "points outside this schema" in str(caught.value)


def test_a_relative_reference_against_a_remote_id_is_refused(
    schema_server: tuple[str, list[str]],
) -> None:
    url, requests = schema_server
    with pytest.raises(SchemaError, match="points outside"):
        check_schema({"$id": url, "properties": {"a": {"$ref": "other.json"}}})
    assert requests == []


def test_a_dangling_local_pointer_is_an_error() -> None:
    with pytest.raises(SchemaError, match="points to nothing"):
        check_schema({"properties": {"a": {"$ref": "#/$defs/missing"}}})


def test_refs_inside_data_keywords_are_data() -> None:
    check_schema({"enum": [{"$ref": "http://127.0.0.1:1/x"}], "default": {"$ref": "file:///x"}})


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"$schema": [1]}, "$schema must be a URI string"),
        ({"$schema": "http://example.com/my-dialect"}, "unknown $schema"),
        ({"type": 42}, "is not valid"),
        ([1, 2], "must be an object"),
    ],
)
def test_invalid_schemas_are_schema_errors(schema: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message.replace("$", r"\$")) as caught:
        check_schema(schema)
    # Both kinds: a taskloom error for the CLI, a jsonschema one for existing handlers.
    assert isinstance(caught.value, TaskloomError)
    assert isinstance(caught.value, jsonschema.SchemaError)


def test_a_schema_checked_once_is_checked_again_from_its_text() -> None:
    # Passing schemas are remembered by their JSON text; a failing one fails every time.
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}},
              "$defs": {"a": {"type": "string"}}}
    assert check_schema(schema) is check_schema(dict(schema)) is jsonschema.Draft202012Validator
    bad = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    for _ in range(2):
        with pytest.raises(SchemaError, match="points to nothing"):
            check_schema(bad)


@pytest.mark.parametrize("schema", [
    {"type": 42, "enum": (1, 2)},  # a tuple: no JSON text reads back equal
    {1: {"type": 42}, "type": 42},  # a key that is not a string
    {"type": 42, "minimum": float("nan")},
])
def test_a_schema_json_cannot_carry_is_still_checked(schema: dict[Any, Any]) -> None:
    with pytest.raises(SchemaError, match="is not valid"):
        check_schema(schema)


# ---------------------------------------------------------------- where taskloom checks schemas


def _compile_errors(text: str) -> list[str]:
    with pytest.raises(SpecErrors) as caught:
        compile_program(loads(textwrap.dedent(text), filename="spec.yaml"), None)
    return [e.render() for e in caught.value.errors]


def test_a_remote_ref_in_an_output_schema_is_a_located_spec_error(
    schema_server: tuple[str, list[str]],
) -> None:
    url, requests = schema_server
    errors = _compile_errors(
        f"""\
        name: p
        nodes:
          a:
            kind: llm
            prompt: hi
            output_schema: {{type: object, properties: {{x: {{$ref: "{url}"}}}}}}
        """
    )
    assert len(errors) == 1
    assert errors[0].startswith("spec.yaml:6:")
    assert "points outside this schema" in errors[0]
    assert requests == []


def test_a_non_string_dialect_in_an_output_schema_is_a_located_spec_error() -> None:
    errors = _compile_errors(
        """\
        name: p
        nodes:
          a:
            kind: llm
            prompt: hi
            output_schema: {$schema: [1]}
        """
    )
    assert len(errors) == 1 and errors[0].startswith("spec.yaml:6:")
    assert "$schema must be a URI string" in errors[0]


def test_a_model_answer_is_checked_without_fetching(
    schema_server: tuple[str, list[str]],
) -> None:
    url, requests = schema_server
    with pytest.raises(SchemaError):
        parse_structured('{"x": 1}', {"properties": {"x": {"$ref": url}}})
    assert requests == []


def test_input_item_schemas_are_checked_without_fetching(
    schema_server: tuple[str, list[str]],
) -> None:
    url, requests = schema_server
    # Refused when the spec loads, located, not first when a run's inputs are checked
    # (where it surfaced as an unlocated error, and as a 500 from `taskloom serve`).
    with pytest.raises(SpecError, match=r"^<string>:3:\d+: .*points outside this schema"):
        loads(
            textwrap.dedent(
                f"""\
                name: p
                inputs:
                  xs: {{type: array, items: {{$ref: "{url}"}}}}
                nodes:
                  a: {{kind: llm, prompt: "{{{{ inputs.xs }}}}"}}
                """
            )
        )
    assert requests == []
