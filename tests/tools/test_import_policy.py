"""`module:function` tools import only modules the user trusts, and refuse the rest
before any of their code runs."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import SpecErrors, ToolError
from taskloom.orchestrator.compile import compile_program
from taskloom.program.load import load
from taskloom.runtime import run_program
from taskloom.tools import ImportPolicy, ImportRefused, ToolNotFound, ToolRegistry
from taskloom.tools.registry import default_registry

TOOL_SOURCE = '''
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()
'''


@pytest.fixture
def spec_folder(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder holding a spec and, beside it, a module of tools with a fresh name."""
    name = f"beside_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(TOOL_SOURCE)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        textwrap.dedent(
            f"""\
            name: p
            nodes:
              loud: {{kind: tool, tool: "{name}:shout", args: {{text: hi}}}}
            outputs: {{said: "{{{{ loud }}}}"}}
            """
        )
    )
    yield spec, name
    sys.modules.pop(name, None)


@pytest.mark.parametrize("reference", ["this:x", "taskloom.cli:graph", "os:system"])
def test_an_untrusted_module_is_refused_without_importing_it(
    reference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = reference.partition(":")[0]
    was_loaded = module in sys.modules
    sys.modules.pop("this", None)
    with pytest.raises(ImportRefused, match=f"--allow-import {module.split('.')[0]}"):
        ToolRegistry().get(reference)
    assert reference not in ToolRegistry()
    if not was_loaded:
        assert module not in sys.modules
    assert "Beautiful is better than ugly" not in capsys.readouterr().out


def test_validate_time_refusal_is_a_located_spec_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sys.modules.pop("this", None)
    spec = tmp_path / "spec.yaml"
    spec.write_text('name: p\nnodes:\n  zen: {kind: tool, tool: "this:x"}\n')
    with pytest.raises(SpecErrors) as caught:
        compile_program(load(spec), default_registry(root=tmp_path))
    [error] = caught.value.errors
    assert error.location is not None
    assert (error.location.line, error.location.column) == (3, 27)
    assert error.message == "unknown tool 'this:x'"
    assert error.hint is not None and "--allow-import this" in error.hint
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""


def test_a_module_beside_the_spec_is_trusted(spec_folder: tuple[Path, str]) -> None:
    spec, name = spec_folder
    assert f"{name}:shout" not in ToolRegistry()
    registry = ToolRegistry(import_policy=ImportPolicy.beside(spec))
    assert registry.get(f"{name}:shout").description == "Upper-case the text."
    assert str(spec.parent) not in sys.path  # only on the path while importing


@pytest.mark.anyio
async def test_a_run_gets_the_policy_through_its_registry(spec_folder: tuple[Path, str]) -> None:
    spec, _ = spec_folder
    tools = default_registry(root=spec.parent, import_policy=ImportPolicy.beside(spec))
    result = await run_program(load(spec), backend=_scripted(), tools=tools)
    assert result.outputs == {"said": "HI"}


def _scripted() -> ScriptedBackend:
    return ScriptedBackend()


def test_a_module_beside_the_spec_may_not_shadow_an_installed_one(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text(TOOL_SOURCE)
    registry = ToolRegistry(import_policy=ImportPolicy.beside(tmp_path / "spec.yaml"))
    with pytest.raises(ImportRefused, match="same name as an installed module"):
        registry.get("json:shout")


def test_a_prefix_trusts_the_package_and_what_is_under_it() -> None:
    policy = ImportPolicy(prefixes=("email.mime",))
    assert policy.allows_prefix("email.mime")
    assert policy.allows_prefix("email.mime.text")
    assert not policy.allows_prefix("email")
    assert not policy.allows_prefix("email.mimex")
    registry = ToolRegistry(import_policy=policy)
    with pytest.raises(ImportRefused):
        registry.get("email.utils:quote")
    with pytest.raises(ToolNotFound, match="no module"):
        registry.get("email.mime.nothing_here:f")


@pytest.mark.parametrize("prefix", ["", "a..b", "os:system", "../x", "a-b"])
def test_a_prefix_must_be_a_module_name(prefix: str) -> None:
    with pytest.raises(ToolError, match="--allow-import"):
        ImportPolicy(prefixes=(prefix,))


def test_a_failed_import_is_not_retried(tmp_path: Path) -> None:
    name = f"counted_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        "import builtins\nbuiltins.taskloom_import_count = "
        "getattr(builtins, 'taskloom_import_count', 0) + 1\nraise RuntimeError('boom')\n"
    )
    registry = ToolRegistry(import_policy=ImportPolicy.beside(tmp_path / "spec.yaml"))
    for _ in range(3):
        with pytest.raises(ToolError, match="boom"):
            registry.get(f"{name}:f")
    import builtins

    assert builtins.taskloom_import_count == 1  # type: ignore[attr-defined]
