"""The MCP side of the command line: `validate` against the servers' own schemas (and
`--offline`), and `taskloom mcp` driven by the SDK's own client over stdio."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp_harness import free_port, spec_text, stdio_server
from typer.testing import CliRunner

from taskloom.cli import app
from taskloom.program.mcp_servers import McpServerSpec

ROOT = Path(__file__).parent.parent
runner = CliRunner()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _write(tmp_path: Path, server: McpServerSpec, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(spec_text(server, body))
    return path


def test_validate_lists_the_tools_and_checks_arguments_against_their_schemas(
    tmp_path: Path,
) -> None:
    spec = _write(tmp_path, stdio_server(), """\
nodes:
  w: {kind: tool, tool: t.weather, args: {city: 3, day: 2}}
  s: {kind: tool, tool: t.plian, args: {text: hi}}
  p: {kind: plan, question: hi, tools: [t.add, t.sub]}
""")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    out = result.output
    assert "MCP server 't' (stdio: " in out
    assert "  t.weather(city, days?): A made-up forecast for a city." in out
    assert f"{spec}:5:49: node 'w': tool 't.weather': 'city': 3 is not of type 'string'" in out
    assert (f"{spec}:5:57: node 'w': tool 't.weather': no argument 'day'; "
            "did you mean 'days'?") in out
    assert f"{spec}:6:25: node 's': unknown tool 't.plian'\n  hint: did you mean 't.plain'?" in out
    assert "node 'p': unknown tool 't.sub' in the planner's tools" in out


def test_validate_of_good_arguments_is_ok(tmp_path: Path) -> None:
    spec = _write(tmp_path, stdio_server(), """\
nodes:
  w: {kind: tool, tool: t.weather, args: {city: Oslo, days: "{{ 1 + 1 }}"}}
""")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok — mcp_test" in result.output


def test_an_unreachable_server_fails_validate_unless_offline(tmp_path: Path) -> None:
    gone = McpServerSpec(url=f"http://127.0.0.1:{free_port()}/mcp", connect_timeout=10)
    spec = _write(tmp_path, gone, """\
nodes:
  w: {kind: tool, tool: t.anything, args: {whatever: 1}}
  c: {kind: tool, tool: calculater, args: {expression: "1"}}
""")
    strict = runner.invoke(app, ["validate", str(spec)])
    assert strict.exit_code == 1
    assert f"{spec}:3:6: cannot reach MCP server 't' (http://127.0.0.1:" in strict.output
    assert "pass --offline" in strict.output

    offline = runner.invoke(app, ["validate", str(spec), "--offline"])
    assert "skipped MCP server 't' (--offline): cannot reach MCP server 't'" in offline.output
    # The unreachable server's tools are taken on trust; everything else is still checked.
    assert "t.anything" not in offline.output
    assert "unknown tool 'calculater'" in offline.output
    assert offline.exit_code == 1


@pytest.mark.anyio
async def test_taskloom_mcp_over_stdio_lists_calls_and_reports_progress(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "double.yaml").write_text("""\
name: double
description: Doubles a number and says it.
inputs:
  x: {type: integer, description: the number}
  note: {type: string, default: none}
nodes:
  twice: {kind: tool, tool: calculator, args: {expression: "{{ inputs.x }} * 2"}}
  say: {kind: llm, prompt: "say {{ twice }}"}
outputs:
  twice: "{{ twice }}"
  said: "{{ say }}"
""")
    (specs / "broken.yaml").write_text("name: broken\nnodes: {a: {kind: nope}}\n")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "taskloom", "mcp", "--specs", str(specs), "--backend", "scripted"],
        env={"PYTHONPATH": str(ROOT)},
    )
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = {tool.name: tool for tool in (await session.list_tools()).tools}
        result = await session.call_tool("double", {"x": 21}, progress_callback=on_progress)
        refused = await session.call_tool("double", {"x": "many"})

    assert set(listed) == {"double"}  # broken.yaml is skipped, with a line on stderr
    assert listed["double"].description == "Doubles a number and says it."
    assert listed["double"].input_schema == {
        "type": "object",
        "properties": {"x": {"type": "integer", "description": "the number"},
                       "note": {"type": "string", "default": "none"}},
        "required": ["x"],
    }
    assert not result.is_error
    assert result.structured_content == {"twice": 42, "said": "ok"}
    assert json.loads(result.content[0].text) == {"twice": 42, "said": "ok"}  # type: ignore[union-attr]
    assert [(done, total) for done, total, _ in progress] == [(1, 2), (2, 2)]
    assert [message for _, _, message in progress] == ["twice succeeded", "say succeeded"]
    assert refused.is_error
    assert "bad arguments for 'double'" in refused.content[0].text  # type: ignore[union-attr]
