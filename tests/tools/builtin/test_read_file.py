from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from taskloom.errors import ToolError
from taskloom.tools import Tool
from taskloom.tools.builtin import read_file as read_file_module
from taskloom.tools.builtin import read_file_tool


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "note.txt").write_text("hello, wörld\n", encoding="utf-8")
    (tmp_path / "secret.txt").write_text("top secret")
    return root


@pytest.fixture
def read_file(root: Path) -> Tool:
    return read_file_tool(root)


@pytest.mark.anyio
async def test_reads_a_file_under_root(read_file: Tool) -> None:
    assert await read_file.call({"path": "docs/note.txt"}) == "hello, wörld\n"
    assert await read_file.call({"path": "./docs/../docs/note.txt"}) == "hello, wörld\n"


@pytest.mark.anyio
async def test_absolute_path_inside_root_is_fine(read_file: Tool, root: Path) -> None:
    assert await read_file.call({"path": str(root / "docs" / "note.txt")}) == "hello, wörld\n"


@pytest.mark.anyio
async def test_max_bytes_cuts_the_text(read_file: Tool) -> None:
    assert await read_file.call({"path": "docs/note.txt", "max_bytes": 5}) == "hello"
    # Cutting inside the two-byte "ö" leaves a replacement character, not an error.
    assert (await read_file.call({"path": "docs/note.txt", "max_bytes": 9})).endswith("w\ufffd")


@pytest.mark.anyio
async def test_max_bytes_must_be_positive(read_file: Tool) -> None:
    with pytest.raises(ToolError, match="max_bytes"):
        await read_file.call({"path": "docs/note.txt", "max_bytes": 0})


@pytest.mark.anyio
async def test_symlink_inside_root_is_followed(read_file: Tool, root: Path) -> None:
    (root / "link.txt").symlink_to(root / "docs" / "note.txt")
    assert await read_file.call({"path": "link.txt"}) == "hello, wörld\n"


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["../secret.txt", "docs/../../secret.txt"])
async def test_dot_dot_escape_is_refused(read_file: Tool, path: str) -> None:
    with pytest.raises(ToolError, match="outside the allowed root"):
        await read_file.call({"path": path})


@pytest.mark.anyio
async def test_absolute_path_elsewhere_is_refused(read_file: Tool, root: Path) -> None:
    with pytest.raises(ToolError, match="outside the allowed root"):
        await read_file.call({"path": str(root.parent / "secret.txt")})
    with pytest.raises(ToolError, match="outside the allowed root"):
        await read_file.call({"path": "/etc/passwd"})


@pytest.mark.anyio
async def test_symlink_escape_is_refused(read_file: Tool, root: Path) -> None:
    (root / "sneaky.txt").symlink_to(root.parent / "secret.txt")
    (root / "sneaky_dir").symlink_to(root.parent)
    with pytest.raises(ToolError, match="outside the allowed root"):
        await read_file.call({"path": "sneaky.txt"})
    with pytest.raises(ToolError, match="outside the allowed root"):
        await read_file.call({"path": "sneaky_dir/secret.txt"})


@pytest.mark.anyio
async def test_missing_file_and_directory_are_refused(read_file: Tool) -> None:
    with pytest.raises(ToolError, match=r"no file 'docs/missing\.txt'"):
        await read_file.call({"path": "docs/missing.txt"})
    with pytest.raises(ToolError, match="not a regular file"):
        await read_file.call({"path": "docs"})


@pytest.mark.anyio
async def test_null_byte_is_refused(read_file: Tool) -> None:
    with pytest.raises(ToolError, match="read_file"):
        await read_file.call({"path": "docs/note.txt\x00.png"})


def _swap_after_check(
    monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]
) -> None:
    """Run `swap` right after read_file has checked the path and before it opens it."""
    checked = read_file_module.resolve_under_root

    def check_then_swap(root: Path, path: str, *, tool_name: str) -> Path:
        target = checked(root, path, tool_name=tool_name)
        swap()
        return target

    monkeypatch.setattr(read_file_module, "resolve_under_root", check_then_swap)


@pytest.mark.anyio
async def test_a_file_swapped_for_a_symlink_after_the_check_is_not_followed(
    read_file: Tool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = root / "docs" / "note.txt"

    def swap() -> None:
        note.unlink()
        note.symlink_to(root.parent / "secret.txt")

    _swap_after_check(monkeypatch, swap)
    with pytest.raises(ToolError, match="changed while it was being opened"):
        await read_file.call({"path": "docs/note.txt"})


@pytest.mark.anyio
async def test_a_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    read_file: Tool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = root.parent / "outside"
    outside.mkdir()
    (outside / "note.txt").write_text("outside the root")

    def swap() -> None:
        (root / "docs").rename(root / "docs_moved")
        (root / "docs").symlink_to(outside)

    _swap_after_check(monkeypatch, swap)
    with pytest.raises(ToolError, match="changed while it was being opened"):
        await read_file.call({"path": "docs/note.txt"})


@pytest.mark.anyio
async def test_a_fifo_swapped_in_is_refused_without_blocking(
    read_file: Tool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = root / "docs" / "note.txt"

    def swap() -> None:
        note.unlink()
        os.mkfifo(note)

    _swap_after_check(monkeypatch, swap)
    with pytest.raises(ToolError, match="not a regular file"):
        await read_file.call({"path": "docs/note.txt"})
