"""`taskloom serve --mcp-config`: the server's own MCP servers, opened at start, serve
every spec; a spec sent over HTTP that declares its own is a located 422."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from mcp_harness import stdio_server
from serve_harness import StartServer
from typer.testing import CliRunner

from taskloom.cli import app
from taskloom.client import Client

USES_CONFIG_SERVER = """\
name: forecast
nodes:
  w: {kind: tool, tool: t.weather, args: {city: Oslo, days: 2}}
outputs:
  forecast: "{{ w }}"
"""


def _config(tmp_path: Path) -> Path:
    server = stdio_server().model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "mcp.yaml"
    path.write_text(json.dumps({"mcp_servers": {"t": server}}))
    return path


def test_config_servers_serve_specs_and_a_specs_own_server_is_422(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--mcp-config", str(_config(tmp_path)))
    with Client(server.url) as client:
        result = client.wait(client.submit(spec=USES_CONFIG_SERVER))
    assert result["status"] == "succeeded", result
    assert result["outputs"]["forecast"] == {"city": "Oslo", "days": 2, "temperature_c": 14}

    declared = json.dumps(stdio_server().model_dump(mode="json", exclude_defaults=True))
    own = f"name: own\nmcp_servers:\n  mine: {declared}\n" + USES_CONFIG_SERVER.split("\n", 1)[1]
    reply = httpx.post(f"{server.url}/v1/runs", json={"spec": own}, timeout=30)
    assert reply.status_code == 422
    (error,) = reply.json()["errors"]
    assert error.startswith("<request>:3:")
    assert "MCP server 'mine' is declared by the spec" in error
    assert "--mcp-config" in error


def test_a_config_server_that_died_is_started_again_for_the_next_run(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--mcp-config", str(_config(tmp_path)))
    with Client(server.url) as client:
        crash = "name: c\nnodes:\n  boom: {kind: tool, tool: t.crash}\n"
        crashed = client.wait(client.submit(spec=crash))
        again = client.wait(client.submit(spec=USES_CONFIG_SERVER))
    assert crashed["status"] == "failed"
    assert "connection to its server closed" in crashed["nodes"]["boom"]["error"]
    assert again["status"] == "succeeded", again


def test_a_bad_mcp_config_stops_the_start_with_one_line(tmp_path: Path) -> None:
    # Checked by the command before anything binds a port.
    path = tmp_path / "mcp.yaml"
    path.write_text("mcp_servers:\n  t: {comand: [x]}\n")
    result = CliRunner().invoke(app, ["serve", "--mcp-config", str(path)])
    assert result.exit_code == 2
    assert "--mcp-config" in result.output and "comand" in result.output
