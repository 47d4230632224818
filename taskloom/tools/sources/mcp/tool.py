"""One MCP server tool as a taskloom `Tool`: its arguments are checked against the
server's own input schema, and every way a call can go wrong is a `ToolError` that
names the tool and says what happened."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import mcp_types
from mcp import ClientSession
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel, ConfigDict

from taskloom.errors import ToolError
from taskloom.naming import did_you_mean
from taskloom.program.schemas import SchemaError, validator_for
from taskloom.tools.sources.base import Connection
from taskloom.tools.tool import Tool


class _SchemaArguments(BaseModel):
    """Stands in for `Tool.input_model`: an MCP tool's arguments are checked against
    its JSON schema instead."""

    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class McpCall:
    """What calls one tool of an open session, under the name specs use (SERVER.TOOL)."""

    qualified_name: str
    remote_name: str
    session: ClientSession
    call_timeout: float
    # Set when the connection is gone, so that the next run opens the server again.
    connection: Connection

    async def __call__(self, **arguments: Any) -> Any:
        try:
            result = await self.session.call_tool(
                self.remote_name, arguments, read_timeout_seconds=self.call_timeout
            )
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                self.connection.mark_lost()
            raise ToolError(self._failure(exc)) from None
        except (OSError, EOFError) as exc:
            self.connection.mark_lost()
            raise ToolError(
                f"MCP tool '{self.qualified_name}': the server is gone ({exc})"
            ) from None
        return self._output(result)

    def _failure(self, exc: MCPError) -> str:
        if exc.code == mcp_types.REQUEST_TIMEOUT:
            return (f"MCP tool '{self.qualified_name}' timed out after {self.call_timeout:g}s "
                    "(the server's call_timeout)")
        if exc.code == mcp_types.CONNECTION_CLOSED:
            return (f"MCP tool '{self.qualified_name}': the connection to its server closed "
                    "(the server exited or crashed)")
        return f"MCP tool '{self.qualified_name}' failed: {exc.message} (error {exc.code})"

    def _output(self, result: mcp_types.CallToolResult) -> Any:
        if result.is_error:
            raise ToolError(
                f"MCP tool '{self.qualified_name}' returned an error: "
                f"{content_text(result.content) or '(no message)'}"
            )
        if result.structured_content is not None:
            return result.structured_content
        return content_text(result.content)


def content_text(blocks: Iterable[mcp_types.ContentBlock]) -> str:
    """The text of a result's content; other blocks are named by their type."""
    parts = []
    for block in blocks:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content]")
    return "\n".join(parts)


@dataclass(frozen=True)
class McpBackedTool(Tool):
    """A `Tool` whose arguments are the MCP tool's input schema, checked with jsonschema,
    and whose function is an `McpCall`."""

    schema: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def input_schema(self) -> dict[str, Any]:
        return dict(self.schema)

    def validate_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        problems = [*self._unknown(args), *self._value_problems(args, check_required=True)]
        if problems:
            raise ToolError(f"tool '{self.name}' got invalid arguments: {'; '.join(problems)}")
        return dict(args)

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        present = {*literal_args, *templated}
        missing = [f"missing required argument '{name}'"
                   for name in self._required() if name not in present]
        return [*self._unknown(present), *missing,
                *self._value_problems(literal_args, check_required=False)]

    def _properties(self) -> dict[str, Any]:
        properties = self.schema.get("properties")
        return properties if isinstance(properties, dict) else {}

    def _required(self) -> list[str]:
        required = self.schema.get("required")
        if not isinstance(required, list):
            return []
        return [name for name in required if isinstance(name, str)]

    def _unknown(self, given: Iterable[str]) -> list[str]:
        # Only where the schema lists its arguments and does not invite others.
        known = self._properties()
        if not known or self.schema.get("additionalProperties", False) not in (False, None):
            return []
        problems = []
        for name in dict.fromkeys(given):
            if name not in known:
                hint = did_you_mean(name, known)
                problems.append(f"no argument '{name}'{f'; {hint}' if hint else ''}")
        return problems

    def _value_problems(self, args: Mapping[str, Any], *, check_required: bool) -> list[str]:
        dropped = {"additionalProperties", *(() if check_required else ("required",))}
        schema = {k: v for k, v in self.schema.items() if k not in dropped}
        try:
            errors = list(validator_for(schema).iter_errors(dict(args)))
        except (SchemaError, jsonschema.SchemaError) as exc:
            return [f"its input schema is not valid: {exc}"]
        return [_describe(error) for error in errors]


def mcp_tool(
    source: str,
    remote: mcp_types.Tool,
    session: ClientSession,
    call_timeout: float,
    connection: Connection,
) -> McpBackedTool:
    """The tool `remote` of `source`'s session, named SOURCE.TOOL."""
    name = f"{source}.{remote.name}"
    call = McpCall(name, remote.name, session, call_timeout, connection)
    return McpBackedTool(
        name=name, description=remote.description or "", input_model=_SchemaArguments,
        fn=call, is_async=True, schema=dict(remote.input_schema),
    )


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path)
    if error.validator == "required":
        return f"missing required argument {error.message.split(' is a required')[0]}"
    return f"'{where}': {error.message}" if where else error.message
