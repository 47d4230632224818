from __future__ import annotations

import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from pydantic import Field

from taskloom.errors import ToolError
from taskloom.tools import ImportPolicy, Tool, ToolNotFound, ToolRegistry, default_registry, tool

# --- schema from type hints and docstrings ------------------------------------------


def search(query: str, limit: int = 10, tags: list[str] | None = None) -> list[str]:
    """Search the index for documents.

    Longer text that is not part of the summary.

    Args:
        query: What to look for.
        limit (int): At most this many
            results, best first.
        tags: Only documents with all these tags.

    Returns:
        Matching document ids.
    """
    return [query] * limit


def test_schema_comes_from_hints_and_google_docstring() -> None:
    t = tool(search)
    assert t.name == "search"
    assert t.description == "Search the index for documents."
    assert not t.is_async
    schema = t.input_schema
    assert schema["required"] == ["query"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"]["type"] == "integer"
    assert props["limit"]["default"] == 10
    assert props["limit"]["description"] == "At most this many results, best first."
    assert props["tags"]["description"] == "Only documents with all these tags."
    assert "title" not in schema


def test_numpy_docstring_and_constraints() -> None:
    @tool
    def scale(values: list[float], factor: Annotated[float, Field(gt=0)] = 1.0) -> list[float]:
        """Multiply every value.

        Parameters
        ----------
        values : list of float
            The numbers to scale.
        factor : float
            Multiplier, positive.

        Returns
        -------
        list of float
        """
        return [v * factor for v in values]

    props = scale.input_schema["properties"]
    assert props["values"]["description"] == "The numbers to scale."
    assert props["factor"]["description"] == "Multiplier, positive."
    assert props["factor"]["exclusiveMinimum"] == 0
    assert scale.description == "Multiply every value."


def test_sphinx_docstring() -> None:
    @tool
    def greet(name: str) -> str:
        """Say hello.

        :param name: Who to greet,
            by first name.
        """
        return f"hello {name}"

    assert greet.input_schema["properties"]["name"]["description"] == (
        "Who to greet, by first name."
    )


def test_name_and_description_can_be_given() -> None:
    @tool(name="lookup", description="Find a thing.")
    def find(key: str) -> str:
        """Ignored summary."""
        return key

    assert (find.name, find.description) == ("lookup", "Find a thing.")


def test_summary_stops_at_a_section_without_blank_line() -> None:
    @tool
    def f(x: int) -> int:
        """Double it.
        Args:
            x: The number.
        """
        return 2 * x

    assert f.description == "Double it."
    assert f.input_schema["properties"]["x"]["description"] == "The number."


def test_parameter_names_that_clash_with_pydantic_still_work() -> None:
    @tool
    def post(json: dict[str, Any], schema: str = "v1") -> str:
        return f"{schema}:{sorted(json)}"

    assert set(post.input_schema["properties"]) == {"json", "schema"}
    assert post.validate_args({"json": {"a": 1}}) == {"json": {"a": 1}, "schema": "v1"}


def test_unannotated_parameter_is_refused_at_decoration() -> None:
    def untyped(x, y: int) -> int:  # type: ignore[no-untyped-def]
        return int(x) + y

    with pytest.raises(ToolError, match=r"'x'.*no type annotation"):
        tool(untyped)


def test_var_args_are_refused_at_decoration() -> None:
    def variadic(*values: int) -> int:
        return sum(values)

    with pytest.raises(ToolError, match="keyword arguments only"):
        tool(variadic)


def test_parameter_types_without_json_schema_are_refused_at_decoration() -> None:
    def takes_event(done: threading.Event) -> None:
        done.set()

    with pytest.raises(ToolError, match="JSON cannot describe"):
        tool(takes_event)


# --- validation ----------------------------------------------------------------------


def test_validate_args_coerces_and_fills_defaults() -> None:
    t = tool(search)
    assert t.validate_args({"query": "x", "limit": "3"}) == {
        "query": "x",
        "limit": 3,
        "tags": None,
    }


def test_validate_args_names_each_bad_field() -> None:
    t = tool(search)
    with pytest.raises(ToolError) as caught:
        t.validate_args({"limit": "many", "colour": "red"})
    message = str(caught.value)
    assert "tool 'search'" in message
    assert "'query' is required" in message
    assert "'limit'" in message and "valid integer" in message
    assert "'colour' is not an argument" in message


def test_check_static_args_reports_unknown_missing_and_mistyped() -> None:
    t = tool(search)
    problems = t.check_static_args({"qeury": "x", "limit": "lots"}, templated=set())
    assert sorted(problems) == [
        "'limit': Input should be a valid integer, unable to parse string as an integer "
        "(got 'lots')",
        "missing required argument 'query'",
        "no argument 'qeury'; did you mean 'query'?",
    ]


def test_check_static_args_counts_templated_as_present_and_unchecked() -> None:
    t = tool(search)
    assert t.check_static_args({"limit": 5}, templated={"query"}) == []
    # A templated value is only known at run time, so no type problem is reported for it.
    assert t.check_static_args({}, templated={"query", "limit"}) == []


def test_check_static_args_flags_unknown_templated_names() -> None:
    t = tool(search)
    problems = t.check_static_args({"query": "x"}, templated={"tagz"})
    assert problems == ["no argument 'tagz'; did you mean 'tags'?"]


# --- calling -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sync_tool_runs_in_a_worker_thread() -> None:
    @tool
    def where() -> int:
        return threading.get_ident()

    assert await where.call({}) != threading.get_ident()


@pytest.mark.anyio
async def test_async_tool_is_awaited() -> None:
    @tool
    async def add(a: int, b: int) -> int:
        await anyio.sleep(0)
        return a + b

    assert add.is_async
    assert await add.call({"a": 2, "b": "3"}) == 5


@pytest.mark.anyio
async def test_call_validates_before_running() -> None:
    ran = []

    @tool
    def record(n: int) -> None:
        ran.append(n)

    with pytest.raises(ToolError, match="'n'"):
        await record.call({"n": "not a number"})
    assert ran == []


@pytest.mark.anyio
async def test_exception_from_tool_is_wrapped_with_cause() -> None:
    @tool
    def explode(x: int) -> int:
        raise ValueError(f"bad x {x}")

    with pytest.raises(ToolError) as caught:
        await explode.call({"x": 7})
    assert str(caught.value) == "tool 'explode' raised ValueError: bad x 7"
    assert isinstance(caught.value.__cause__, ValueError)


@pytest.mark.anyio
async def test_tool_error_from_tool_passes_through_unwrapped() -> None:
    @tool
    async def refuse(x: int) -> int:
        raise ToolError("refuse: no")

    with pytest.raises(ToolError) as caught:
        await refuse.call({"x": 1})
    assert str(caught.value) == "refuse: no"


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the abandoned worker thread finish


@pytest.mark.anyio
async def test_cancelling_a_hanging_sync_tool_returns_promptly(release: threading.Event) -> None:
    @tool
    def hang() -> None:
        release.wait(timeout=5)

    started = time.monotonic()
    with anyio.move_on_after(0.2) as scope:
        await hang.call({})
    assert scope.cancelled_caught
    assert time.monotonic() - started < 2


@pytest.mark.anyio
async def test_cancellation_of_async_tool_is_not_wrapped() -> None:
    @tool
    async def forever() -> None:
        await anyio.sleep_forever()

    with anyio.move_on_after(0.05) as scope:
        await forever.call({})
    assert scope.cancelled_caught


# --- the registry --------------------------------------------------------------------


def test_register_get_names_and_schemas() -> None:
    registry = ToolRegistry()

    def zeta(x: int) -> int:
        """Last tool."""
        return x

    plain = registry.register(zeta)
    wrapped = registry.register(tool(search))
    assert isinstance(plain, Tool)
    assert registry.get("zeta") is plain
    assert registry.get("search") is wrapped
    assert registry.names() == ["search", "zeta"]
    assert "zeta" in registry and "nope" not in registry and 3 not in registry
    schemas = registry.schemas()
    assert [s["name"] for s in schemas] == ["search", "zeta"]
    assert schemas[1] == {
        "name": "zeta",
        "description": "Last tool.",
        "parameters": plain.input_schema,
    }


def test_duplicate_name_is_refused_unless_replacing() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(ToolError, match="already registered"):
        registry.register(search)

    def search_v2(query: str) -> list[str]:
        return [query]

    newer = registry.register(tool(search_v2, name="search"), replace=True)
    assert registry.get("search") is newer


def test_unknown_tool_suggests_close_names() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(ToolNotFound) as caught:
        registry.get("serch")
    assert caught.value.suggestions == ["search"]
    assert "did you mean 'search'?" in str(caught.value)
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, ToolError)


def test_unknown_tool_without_close_match_lists_the_known_ones() -> None:
    registry = ToolRegistry([search])
    with pytest.raises(ToolNotFound, match="registered tools: search") as caught:
        registry.get("zzzzzz")
    assert caught.value.suggestions == []


def test_default_registry_has_the_builtins(tmp_path: Path) -> None:
    registry = default_registry(root=tmp_path, allowed_hosts=["example.com"])
    assert registry.names() == ["calculator", "http_get", "read_file", "sqlite_query"]


# --- package.module:function references ------------------------------------------------


@pytest.fixture
def temp_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"taskloom_test_tools_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            '''
            from taskloom.tools import tool

            COUNT = 3

            def shout(text: str, times: int = 1) -> str:
                """Upper-case the text."""
                return text.upper() * times

            @tool(name="whisper")
            def whisper_impl(text: str) -> str:
                return text.lower()

            def untyped(text):
                return text
            '''
        )
    )
    (tmp_path / f"{name}_broken.py").write_text("import taskloom_no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for module in (name, f"{name}_broken"):
        sys.modules.pop(module, None)


def _trusting(*modules: str) -> ToolRegistry:
    return ToolRegistry(import_policy=ImportPolicy(prefixes=modules))


@pytest.mark.anyio
async def test_module_function_reference_is_imported_and_wrapped(temp_module: str) -> None:
    registry = _trusting(temp_module)
    reference = f"{temp_module}:shout"
    assert reference in registry
    shout = registry.get(reference)
    assert shout is registry.get(reference)  # imported once
    assert shout.name == "shout"
    assert shout.description == "Upper-case the text."
    assert await shout.call({"text": "hi", "times": 2}) == "HIHI"
    assert registry.names() == []


def test_module_reference_to_a_tool_object_returns_it(temp_module: str) -> None:
    whisper = _trusting(temp_module).get(f"{temp_module}:whisper_impl")
    assert whisper.name == "whisper"


def test_module_reference_problems(temp_module: str) -> None:
    registry = _trusting(temp_module, f"{temp_module}_broken", "taskloom_no_such_module_xyz")
    with pytest.raises(ToolNotFound) as caught:
        registry.get(f"{temp_module}:shoot")
    assert caught.value.suggestions == [f"{temp_module}:shout"]
    assert "did you mean 'shout'?" in str(caught.value)

    with pytest.raises(ToolNotFound, match="no module"):
        registry.get("taskloom_no_such_module_xyz:f")
    with pytest.raises(ToolError, match="not a function"):
        registry.get(f"{temp_module}:COUNT")
    with pytest.raises(ToolError, match="no type annotation"):
        registry.get(f"{temp_module}:untyped")

    # A module that exists but cannot import is its own bug, not "tool not found".
    with pytest.raises(ToolError, match="taskloom_no_such_dependency_xyz") as broken:
        registry.get(f"{temp_module}_broken:f")
    assert not isinstance(broken.value, ToolNotFound)
    assert f"{temp_module}:nope" not in registry
