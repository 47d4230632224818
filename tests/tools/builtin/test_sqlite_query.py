from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from taskloom.errors import ToolError
from taskloom.tools import Tool
from taskloom.tools.builtin import sqlite_query_tool


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    with sqlite3.connect(root / "shop.db") as connection:
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        connection.executemany(
            "INSERT INTO items (name, price) VALUES (?, ?)",
            [("apple", 0.5), ("bread", 2.25), ("cheese", 7.0)],
        )
    connection.close()
    with sqlite3.connect(tmp_path / "outside.db") as other:
        other.execute("CREATE TABLE secrets (value TEXT)")
        other.execute("INSERT INTO secrets VALUES ('hidden')")
    other.close()
    (root / "notes.txt").write_text("not a database")
    return root


@pytest.fixture
def sqlite_query(root: Path) -> Tool:
    return sqlite_query_tool(root)


def _fingerprint(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


@pytest.mark.anyio
async def test_select_returns_rows_as_dicts(sqlite_query: Tool) -> None:
    rows = await sqlite_query.call(
        {"database": "shop.db", "sql": "SELECT name, price FROM items WHERE price > 1 ORDER BY id"}
    )
    assert rows == [{"name": "bread", "price": 2.25}, {"name": "cheese", "price": 7.0}]


@pytest.mark.anyio
async def test_max_rows_caps_the_result(sqlite_query: Tool) -> None:
    rows = await sqlite_query.call(
        {"database": "shop.db", "sql": "SELECT id FROM items ORDER BY id", "max_rows": 2}
    )
    assert rows == [{"id": 1}, {"id": 2}]
    with pytest.raises(ToolError, match="max_rows"):
        await sqlite_query.call({"database": "shop.db", "sql": "SELECT 1", "max_rows": 0})


def test_introspection_pragmas_and_recursive_ctes_are_allowed(sqlite_query: Tool) -> None:
    columns = sqlite_query.fn(database="shop.db", sql="PRAGMA table_info(items)")
    assert [c["name"] for c in columns] == ["id", "name", "price"]
    counted = sqlite_query.fn(
        database="shop.db",
        sql="WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5) "
        "SELECT count(*) AS c FROM n",
    )
    assert counted == [{"c": 5}]


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO items (name, price) VALUES ('fig', 1.0)",
        "UPDATE items SET price = 0",
        "DELETE FROM items",
        "DROP TABLE items",
        "CREATE TABLE more (x)",
        "CREATE TEMP TABLE scratch (x)",
        "PRAGMA query_only = OFF",
        "PRAGMA user_version = 7",
        "VACUUM",
    ],
)
def test_writes_are_refused_and_the_file_is_unchanged(
    sqlite_query: Tool, root: Path, sql: str
) -> None:
    before = _fingerprint(root / "shop.db")
    with pytest.raises(ToolError, match="sqlite_query"):
        sqlite_query.fn(database="shop.db", sql=sql)
    assert _fingerprint(root / "shop.db") == before
    assert len(sqlite_query.fn(database="shop.db", sql="SELECT * FROM items")) == 3


@pytest.mark.anyio
async def test_write_through_call_is_a_tool_error(sqlite_query: Tool, root: Path) -> None:
    before = _fingerprint(root / "shop.db")
    with pytest.raises(ToolError, match="read-only"):
        await sqlite_query.call({"database": "shop.db", "sql": "DROP TABLE items"})
    assert _fingerprint(root / "shop.db") == before


def test_attach_of_a_database_outside_root_is_refused(sqlite_query: Tool, root: Path) -> None:
    outside = root.parent / "outside.db"
    with pytest.raises(ToolError, match="read-only"):
        sqlite_query.fn(database="shop.db", sql=f"ATTACH DATABASE '{outside}' AS other")


def test_multiple_statements_are_refused(sqlite_query: Tool) -> None:
    with pytest.raises(ToolError, match="one statement"):
        sqlite_query.fn(database="shop.db", sql="SELECT 1; DROP TABLE items")


@pytest.mark.parametrize("database", ["../outside.db", "/etc/passwd"])
def test_paths_outside_root_are_refused(sqlite_query: Tool, database: str) -> None:
    with pytest.raises(ToolError, match="outside the allowed root"):
        sqlite_query.fn(database=database, sql="SELECT * FROM secrets")


def test_symlink_escape_is_refused(sqlite_query: Tool, root: Path) -> None:
    (root / "link.db").symlink_to(root.parent / "outside.db")
    with pytest.raises(ToolError, match="outside the allowed root"):
        sqlite_query.fn(database="link.db", sql="SELECT * FROM secrets")


def test_missing_database_and_non_database_file(sqlite_query: Tool, root: Path) -> None:
    with pytest.raises(ToolError, match="no file"):
        sqlite_query.fn(database="nope.db", sql="SELECT 1")
    assert not (root / "nope.db").exists()
    with pytest.raises(ToolError, match="not a database"):
        sqlite_query.fn(database="notes.txt", sql="SELECT * FROM sqlite_master")


def test_sql_errors_are_tool_errors(sqlite_query: Tool) -> None:
    with pytest.raises(ToolError, match="no such table"):
        sqlite_query.fn(database="shop.db", sql="SELECT * FROM missing")


@pytest.mark.timeout(20)
def test_runaway_query_is_interrupted(root: Path) -> None:
    sqlite_query = sqlite_query_tool(root, timeout_s=0.2)
    endless = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT max(i) FROM n"
    with pytest.raises(ToolError, match=r"ran longer than 0\.2 s"):
        sqlite_query.fn(database="shop.db", sql=endless)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT zeroblob(900000000) AS big",
        "SELECT randomblob(2000000) AS big",
        "SELECT replace(hex(zeroblob(600000)), '0', 'xx') AS big",
    ],
)
def test_a_value_past_the_length_limit_is_refused_before_it_is_built(
    sqlite_query: Tool, sql: str
) -> None:
    with pytest.raises(ToolError, match="larger than 1,048,576 bytes"):
        sqlite_query.fn(**{"database": "shop.db", "sql": sql})


def test_a_result_past_its_byte_cap_is_refused(root: Path) -> None:
    capped = sqlite_query_tool(root, max_result_bytes=10_000)
    sql = (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
        "SELECT i, hex(zeroblob(250)) AS padding FROM n"
    )
    with pytest.raises(ToolError, match="larger than 10,000 bytes after 19 rows"):
        capped.fn(**{"database": "shop.db", "sql": sql})
    small = capped.fn(**{"database": "shop.db", "sql": sql + " LIMIT 5"})
    assert [row["i"] for row in small] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT fts3_tokenizer('simple') AS pointer", "native pointer"),
        ("SELECT load_extension('x') AS loaded", "native code"),
        ("SELECT printf('%.*c', 900000000, 'x') AS big", "past the timeout"),
        ("SELECT FORMAT('%d', 1) AS f", "past the timeout"),
    ],
)
def test_functions_that_escape_the_limits_are_denied(
    sqlite_query: Tool, sql: str, reason: str
) -> None:
    with pytest.raises(ToolError, match=f"not authorized to use function.*{reason}"):
        sqlite_query.fn(**{"database": "shop.db", "sql": sql})


def test_a_long_like_pattern_is_refused(sqlite_query: Tool) -> None:
    pattern = "%a" * 200
    with pytest.raises(ToolError, match="LIKE or GLOB pattern too complex"):
        sqlite_query.fn(
            database="shop.db", sql=f"SELECT name FROM items WHERE name LIKE '{pattern}'"
        )
