"""A run request from the network, checked: it is untrusted input. Each refusal is a
`Refusal` with the HTTP status and a message a person can act on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from taskloom.errors import SpecError, SpecErrors
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.inputs import InputError, resolve_inputs
from taskloom.orchestrator.scheduler.registry import policy_names
from taskloom.program.budget import Budget
from taskloom.program.load import loads
from taskloom.program.models import Program
from taskloom.serve.config import Limits
from taskloom.serve.programs import NamedProgram
from taskloom.tools.registry import ToolRegistry


class Refusal(Exception):
    """A request the server will not run."""

    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class SubmitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    program: str | None = None
    spec: str | None = None
    inputs: dict[str, Any] = {}
    policy: str | None = None
    budget: Budget | None = None


@dataclass(frozen=True)
class Submission:
    program: Program
    spec_text: str
    spec_file: str
    inputs: dict[str, Any]
    policy: str | None
    budget: Budget | None = None


def parse_body(raw: bytes, limits: Limits) -> SubmitBody:
    if len(raw) > limits.max_body_bytes:
        raise Refusal(413, f"request body of {len(raw)} bytes is too large")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refusal(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Refusal(400, "the body must be a JSON object: {\"program\" or \"spec\", \"inputs\"}")
    try:
        return SubmitBody.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()]
        raise Refusal(422, "invalid request body", problems) from None


def check_submission(
    body: SubmitBody,
    *,
    limits: Limits,
    programs: dict[str, NamedProgram],
    tools: ToolRegistry,
    allow_import_tools: bool,
) -> Submission:
    """The program and inputs a valid request asks for; raises `Refusal` otherwise."""
    if (body.program is None) == (body.spec is None):
        raise Refusal(422, "give exactly one of \"program\" (a name) or \"spec\" (YAML text)")
    inputs_size = len(json.dumps(body.inputs, default=str).encode())
    if inputs_size > limits.max_input_bytes:
        raise Refusal(413, f"inputs of {inputs_size} bytes exceed the server's limit of "
                           f"{limits.max_input_bytes} bytes")
    if body.program is not None:
        if body.program not in programs:
            raise Refusal(404, unknown_name_message("program", body.program, programs))
        named = programs[body.program]
        text, filename = named.path.read_text(encoding="utf-8"), str(named.path)
    else:
        assert body.spec is not None
        text, filename = body.spec, "<request>"
        size = len(text.encode())
        if size > limits.max_spec_bytes:
            raise Refusal(413, f"spec of {size} bytes exceeds the server's limit of "
                               f"{limits.max_spec_bytes} bytes")
    program = _compiled(text, filename, tools, allow_import_tools, limits)
    if body.policy is not None and body.policy not in policy_names():
        raise Refusal(422, unknown_name_message("policy", body.policy, policy_names()))
    try:
        inputs = resolve_inputs(program, body.inputs)
    except InputError as exc:
        raise Refusal(422, f"bad inputs: {exc}") from None
    return Submission(program, text, filename, inputs, body.policy, body.budget)


def _compiled(
    text: str, filename: str, tools: ToolRegistry, allow_import_tools: bool, limits: Limits
) -> Program:
    try:
        program = loads(text, filename=filename)
        if len(program.nodes) > limits.max_nodes:
            raise Refusal(413, f"the program has {len(program.nodes)} nodes; this server "
                               f"runs at most {limits.max_nodes}")
        if not allow_import_tools:
            refused = list(import_tool_errors(program))
            if refused:
                raise SpecErrors(refused)
        compile_program(program, tools)
    except (SpecError, SpecErrors) as exc:
        errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
        raise Refusal(422, "the spec has errors", [e.render() for e in errors]) from None
    return program


def import_tool_errors(program: Program) -> Iterator[SpecError]:
    """A located error for each `module:function` tool: over the network, a spec may use
    only the tools the server registered."""
    source = getattr(program, "_source", None)
    for node_id, node in program.nodes.items():
        for path, name in _tool_refs(node):
            if ":" in name:
                yield SpecError(
                    f"tool '{name}' imports Python code, which specs sent to this server "
                    "may not do",
                    location=source.locate(("nodes", node_id, *path)) if source else None,
                    node=node_id,
                    hint="use a tool the server registered, or start the server with "
                         "--allow-import-tools",
                )


def _tool_refs(node: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    tool = getattr(node, "tool", None)
    if isinstance(tool, str):
        yield ("tool",), tool
    for index, name in enumerate(getattr(node, "tools", None) or ()):
        if isinstance(name, str):
            yield ("tools", index), name
    inner = getattr(node, "node", None)
    if inner is not None:
        for path, name in _tool_refs(inner):
            yield ("node", *path), name
