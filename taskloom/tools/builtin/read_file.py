"""read_file: text files under one root directory, and nothing outside it.

The path is checked (resolved, symlinks followed, inside the root), and then opened
again from the root one component at a time with `O_NOFOLLOW`. The resolved path has
no symlinks left in it, so a symlink swapped in between the check and the open makes
the open fail instead of leading outside the root.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Annotated

from pydantic import Field

from taskloom.errors import ToolError
from taskloom.tools.tool import Tool, tool

DEFAULT_MAX_BYTES = 65536
# A ceiling on what one call may ask for, so a planner cannot pull a huge file into memory.
MAX_BYTES_CEILING = 16 * 1024 * 1024


def resolve_under_root(root: Path, path: str, *, tool_name: str) -> Path:
    """The file `path` names, relative to `root`, after following every symlink.

    Refuses a path that ends up outside `root` ("..", an absolute path elsewhere, or a
    symlink pointing out), and one that is not an existing regular file.
    """
    resolved_root = root.resolve()
    try:
        target = (resolved_root / path).resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # null bytes, symlink loops
        raise ToolError(f"{tool_name}: cannot resolve '{path}': {exc}") from None
    if not target.is_relative_to(resolved_root):
        raise ToolError(f"{tool_name}: '{path}' is outside the allowed root {resolved_root}")
    if not target.exists():
        raise ToolError(f"{tool_name}: no file '{path}' under {resolved_root}")
    if not target.is_file():
        raise ToolError(f"{tool_name}: '{path}' is not a regular file")
    return target


def open_without_following(root: Path, target: Path, path: str, *, tool_name: str) -> int:
    """A read-only descriptor for `target` (a resolved path under the resolved `root`),
    opened relative to `root` without following any symlink; refuses anything that is
    not a regular file by the time it is open."""
    parts = target.relative_to(root).parts
    directory = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            inner = os.open(part, _NO_FOLLOW | os.O_DIRECTORY, dir_fd=directory)
            os.close(directory)
            directory = inner
        # Non-blocking, so that a FIFO swapped in cannot hang the open.
        descriptor = os.open(parts[-1], _NO_FOLLOW | os.O_NONBLOCK, dir_fd=directory)
    except OSError as exc:
        raise _open_error(exc, path, tool_name) from None
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise ToolError(f"{tool_name}: '{path}' is not a regular file")
    return descriptor


_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW


def _open_error(exc: OSError, path: str, tool_name: str) -> ToolError:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
        return ToolError(
            f"{tool_name}: '{path}' changed while it was being opened (a symlink or "
            "directory was swapped in); refused"
        )
    return ToolError(f"{tool_name}: cannot open '{path}': {exc.strerror}")


def read_file_tool(root: Path | str) -> Tool:
    """A `read_file` tool confined to `root`."""
    confined_root = Path(root).resolve()

    def read_file(
        path: str,
        max_bytes: Annotated[int, Field(ge=1, le=MAX_BYTES_CEILING)] = DEFAULT_MAX_BYTES,
    ) -> str:
        """Read a text file and return its contents (decoded as UTF-8).

        Args:
            path: The file's path, relative to the tool's root directory.
            max_bytes: Read at most this many bytes from the start of the file.
        """
        target = resolve_under_root(confined_root, path, tool_name="read_file")
        descriptor = open_without_following(confined_root, target, path, tool_name="read_file")
        with os.fdopen(descriptor, "rb") as handle:
            data = handle.read(max_bytes)
        # A cut may split a multi-byte character; replace it rather than fail.
        return data.decode("utf-8", errors="replace")

    return tool(read_file)
