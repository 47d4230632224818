"""`mcp_servers:` in a spec: the Model Context Protocol servers whose tools the program
calls as `NAME.TOOL`.

Each entry is either a stdio server (`command`, with optional `env` and `cwd`) that the
runtime starts as a subprocess, or a streamable-HTTP server (`url`, optional `headers`)
that it connects to. The same model reads a server's `--mcp-config` file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from taskloom.program.spec_model import SpecModel

SERVER_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
McpTransport = Literal["stdio", "http"]


class McpServerSpec(SpecModel):
    """One MCP server: `command` (stdio) or `url` (streamable HTTP), never both."""

    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    # Relative to the spec's folder; a stdio server of a spec file starts there.
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    # Seconds one tool call may take before it is a node error (a node's own `timeout`
    # may end it sooner), and seconds to start and list the server's tools.
    call_timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "an MCP server needs exactly one of `command` (a stdio server: the program "
                "and its arguments) or `url` (a streamable-HTTP endpoint)"
            )
        if self.url is not None and (self.env or self.cwd is not None):
            raise ValueError("`env` and `cwd` are for stdio servers (`command`), not `url`")
        if self.command is not None and self.headers:
            raise ValueError("`headers` are for HTTP servers (`url`), not `command`")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"`url` must be an http:// or https:// URL, got '{self.url}'")
        return self

    @property
    def transport(self) -> McpTransport:
        return "stdio" if self.command is not None else "http"

    def describe(self) -> str:
        """Where the server is, for messages: its command line or its URL."""
        return " ".join(self.command) if self.command is not None else str(self.url)


def check_server_names(servers: dict[str, Any]) -> dict[str, Any]:
    """A server's name prefixes its tools (`NAME.TOOL`), so it may hold no dot."""
    for name in servers:
        if not SERVER_NAME_PATTERN.match(name):
            raise ValueError(
                f"MCP server name '{name}' must be a name: letters, digits, '_' and '-', "
                "not starting with a digit (its tools are called as NAME.TOOL)"
            )
    return servers


class McpConfig(SpecModel):
    """A server operator's `--mcp-config` file: the MCP servers every spec may use."""

    mcp_servers: dict[str, McpServerSpec] = Field(default_factory=dict)

    _names = field_validator("mcp_servers")(check_server_names)


def read_mcp_config(path: Path) -> McpConfig:
    """An `--mcp-config` file (YAML or JSON); `ValueError` says what is wrong with it."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"--mcp-config {path}: cannot read it: {exc}") from None
    try:
        return McpConfig.model_validate(data if data is not None else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'the file'}: {e['msg']}" for e in exc.errors()
        )
        raise ValueError(f"--mcp-config {path}: {problems}") from None
