"""`mcp_servers:` in a spec, and the `--mcp-config` file: one transport per server,
names fit for NAME.TOOL, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskloom.errors import SpecError, SpecErrors
from taskloom.program.load import loads
from taskloom.program.mcp_servers import McpServerSpec, read_mcp_config

NODES = "nodes:\n  a: {kind: tool, tool: calculator, args: {expression: '1'}}\n"


def _errors(servers: str) -> list[str]:
    with pytest.raises((SpecError, SpecErrors)) as caught:
        loads(f"name: x\nmcp_servers:\n{servers}{NODES}", filename="x.yaml")
    exc = caught.value
    return [e.render() for e in (exc.errors if isinstance(exc, SpecErrors) else [exc])]


def test_stdio_and_http_servers_are_read() -> None:
    program = loads(
        "name: x\nmcp_servers:\n"
        "  files: {command: [python, server.py], env: {A: b}, call_timeout: 5}\n"
        "  web: {url: 'https://example.org/mcp', headers: {Authorization: Bearer t}}\n"
        + NODES, filename="x.yaml",
    )
    files, web = program.mcp_servers["files"], program.mcp_servers["web"]
    assert (files.transport, files.command, files.env, files.call_timeout) == (
        "stdio", ["python", "server.py"], {"A": "b"}, 5)
    assert (web.transport, web.headers) == ("http", {"Authorization": "Bearer t"})
    assert web.describe() == "https://example.org/mcp"


@pytest.mark.parametrize(("entry", "message"), [
    ("{}", "exactly one of `command`"),
    ("{command: [x], url: 'http://h/mcp'}", "exactly one of `command`"),
    ("{url: 'http://h/mcp', env: {A: b}}", "`env` and `cwd` are for stdio servers"),
    ("{command: [x], headers: {A: b}}", "`headers` are for HTTP servers"),
    ("{url: 'file:///etc/passwd'}", "must be an http:// or https:// URL"),
    ("{command: []}", "at least 1 item"),
])
def test_a_bad_server_is_a_located_error(entry: str, message: str) -> None:
    (error,) = _errors(f"  s: {entry}\n")
    assert error.startswith("x.yaml:3:") and message in error


def test_an_unknown_field_gets_a_suggestion() -> None:
    (error,) = _errors("  s: {comand: [x]}\n")
    assert "unknown field 'comand'" in error and "did you mean 'command'?" in error


def test_a_server_name_may_not_hold_a_dot() -> None:
    (error,) = _errors("  my.server: {command: [x]}\n")
    assert "must be a name" in error and "NAME.TOOL" in error


def test_the_mcp_config_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("mcp_servers:\n  t: {url: 'http://127.0.0.1:1/mcp'}\n")
    assert read_mcp_config(good).mcp_servers == {"t": McpServerSpec(url="http://127.0.0.1:1/mcp")}
    bad = tmp_path / "bad.yaml"
    bad.write_text("mcp_servers:\n  t: {url: 'http://h/mcp', command: [x]}\n")
    with pytest.raises(ValueError, match=r"--mcp-config .*bad.yaml: mcp_servers.t: .*exactly one"):
        read_mcp_config(bad)
    with pytest.raises(ValueError, match="cannot read it"):
        read_mcp_config(tmp_path / "missing.yaml")
