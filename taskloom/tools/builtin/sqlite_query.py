"""sqlite_query: read-only SQL on SQLite files under one root directory.

Read-only three times over: the file is opened with `mode=ro`, the connection sets
`PRAGMA query_only`, and an authorizer allows only reads, so a statement can neither
write, turn those guards off, nor ATTACH a database from outside the root.

Bounded too: no single string or blob may grow past `MAX_VALUE_BYTES` (SQLite's own
length limit, so `printf('%.*c', 900000000, 'x')` or `zeroblob(900000000)` fails at
once instead of allocating gigabytes inside one VM step, where no progress handler
runs), the rows returned are capped in count and in bytes, every statement is
interrupted at the call's deadline, and functions that hand out native pointers
(`fts3_tokenizer`) or reach outside the database are denied.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from taskloom.errors import ToolError
from taskloom.tools.builtin.read_file import resolve_under_root
from taskloom.tools.tool import Tool, tool

DEFAULT_MAX_ROWS = 1000
MAX_ROWS_CEILING = 100_000
DEFAULT_TIMEOUT_S = 10.0
# The largest string or blob a statement may build or return.
MAX_VALUE_BYTES = 1024 * 1024
# The most a result may hold, counting the text and bytes of every value returned.
DEFAULT_MAX_RESULT_BYTES = 4 * 1024 * 1024
# Numbers and NULLs count as this many bytes each toward the result's size.
_SCALAR_BYTES = 8
# Functions a query may not call, and why. SQLite checks for interrupts only between VM
# steps, and `printf('%.*c', 900000000, 'x')` spends 15 s inside one step even when its
# result is refused as too long, so printf cannot be held to the timeout.
_DENIED_FUNCTIONS = {
    "fts3_tokenizer": "it hands out a native pointer",
    "fts5": "it hands out a native pointer",
    "load_extension": "it loads native code",
    "readfile": "it reads files outside the database",
    "writefile": "it writes files",
    "edit": "it runs an editor",
    "printf": "a large width runs for seconds in one step, past the timeout",
    "format": "a large width runs for seconds in one step, past the timeout",
}
# LIKE and GLOB match in time proportional to text times pattern, in one step.
_MAX_LIKE_PATTERN = 200
# How many SQLite VM instructions run between deadline checks.
_PROGRESS_INTERVAL = 10_000

_SQLITE_RECURSIVE = getattr(sqlite3, "SQLITE_RECURSIVE", 33)
_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, _SQLITE_RECURSIVE}
)
# Pragmas that only describe the database; any other pragma, or one of these with a
# value to set, is refused.
_PRAGMAS_TAKING_A_NAME = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
    }
)
_PRAGMAS_READ_BARE = frozenset(
    {
        "user_version",
        "schema_version",
        "page_count",
        "page_size",
        "encoding",
        "database_list",
        "collation_list",
        "function_list",
        "table_list",
    }
)


def sqlite_query_tool(
    root: Path | str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_result_bytes: int = DEFAULT_MAX_RESULT_BYTES,
) -> Tool:
    """An `sqlite_query` tool for database files under `root`; a query may run `timeout_s`
    and return at most `max_result_bytes` of values."""
    confined_root = Path(root).resolve()

    def sqlite_query(
        database: str,
        sql: str,
        max_rows: Annotated[int, Field(ge=1, le=MAX_ROWS_CEILING)] = DEFAULT_MAX_ROWS,
    ) -> list[dict[str, Any]]:
        """Run one read-only SQL statement on an SQLite database; returns rows as objects.

        Args:
            database: The database file's path, relative to the tool's root directory.
            sql: One SQL statement that only reads, such as a SELECT.
            max_rows: Return at most this many rows.
        """
        path = resolve_under_root(confined_root, database, tool_name="sqlite_query")
        deadline = time.monotonic() + timeout_s
        with closing(_open_read_only(path, deadline)) as connection:
            try:
                cursor = connection.execute(sql)
                rows = _fetch_capped(cursor, max_rows, max_result_bytes)
            except (sqlite3.Error, sqlite3.Warning) as exc:
                raise _query_error(exc, deadline, timeout_s) from None
            except MemoryError:
                raise ToolError("sqlite_query: the query ran out of memory") from None
            columns = [column[0] for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in rows]

    return tool(sqlite_query)


def _open_read_only(path: Path, deadline: float) -> sqlite3.Connection:
    try:
        connection = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        connection.execute("PRAGMA query_only = ON")
    except sqlite3.Error as exc:
        raise ToolError(f"sqlite_query: cannot open {path.name}: {exc}") from None
    connection.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    connection.setlimit(sqlite3.SQLITE_LIMIT_LIKE_PATTERN_LENGTH, _MAX_LIKE_PATTERN)
    # The authorizer goes in after the pragma above, which it would refuse.
    connection.set_authorizer(_authorize_reads_only)
    connection.set_progress_handler(_past(deadline), _PROGRESS_INTERVAL)
    return connection


def _authorize_reads_only(
    action: int, arg1: str | None, arg2: str | None, _db: str | None, _trigger: str | None
) -> int:
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
        return sqlite3.SQLITE_DENY
    if action in _READ_ACTIONS:
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA and arg1 is not None:
        pragma = arg1.lower()
        if pragma in _PRAGMAS_TAKING_A_NAME or (pragma in _PRAGMAS_READ_BARE and arg2 is None):
            return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY


def _fetch_capped(cursor: sqlite3.Cursor, max_rows: int, max_bytes: int) -> list[Any]:
    """Up to `max_rows` rows; refuses a result whose values add up past `max_bytes`."""
    rows: list[Any] = []
    size = 0
    while len(rows) < max_rows:
        row = cursor.fetchone()
        if row is None:
            break
        size += sum(_value_bytes(value) for value in row)
        if size > max_bytes:
            raise ToolError(
                f"sqlite_query: the result is larger than {max_bytes:,} bytes after "
                f"{len(rows)} rows; select fewer columns or rows (LIMIT), or aggregate"
            )
        rows.append(row)
    return rows


def _value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", errors="replace"))
    if isinstance(value, bytes):
        return len(value)
    return _SCALAR_BYTES


def _past(deadline: float) -> Callable[[], int]:
    # A nonzero return makes SQLite interrupt the statement.
    return lambda: int(time.monotonic() > deadline)


def _query_error(exc: Exception, deadline: float, timeout_s: float) -> ToolError:
    if time.monotonic() > deadline and "interrupt" in str(exc):
        return ToolError(f"sqlite_query: the query ran longer than {timeout_s} s")
    if "too big" in str(exc):
        return ToolError(
            f"sqlite_query: a value would be larger than {MAX_VALUE_BYTES:,} bytes, "
            "the most one string or blob may hold"
        )
    if "to use function" in str(exc):
        name = str(exc).rpartition(":")[2].strip().lower()
        reason = _DENIED_FUNCTIONS.get(name, "it is not allowed")
        return ToolError(f"sqlite_query: refused ({exc}): {reason}")
    if "not authorized" in str(exc) or "authorization denied" in str(exc):
        return ToolError(f"sqlite_query: refused, this tool is read-only and only reads ({exc})")
    return ToolError(f"sqlite_query: {type(exc).__name__}: {exc}")
