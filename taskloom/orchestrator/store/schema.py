"""The run store's tables, and the one place that knows how to bring an older file up to
date. The version lives in SQLite's own `PRAGMA user_version`."""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 3

# Each step takes a file at version i to version i + 1; never edit a step once released.
_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id      TEXT PRIMARY KEY,
        tenant      TEXT NOT NULL DEFAULT '',
        origin      TEXT NOT NULL DEFAULT 'api',
        program     TEXT NOT NULL,
        spec_text   TEXT,
        spec_file   TEXT,
        spec_hash   TEXT,
        inputs      TEXT NOT NULL DEFAULT '{}',
        policy      TEXT,
        status      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        started_at  REAL,
        updated_at  REAL NOT NULL,
        finished_at REAL,
        wall_s      REAL NOT NULL DEFAULT 0,
        outputs     TEXT,
        error       TEXT
    );
    CREATE INDEX runs_by_tenant ON runs (tenant, created_at);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE nodes (
        run_id               TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        node_id              TEXT NOT NULL,
        kind                 TEXT NOT NULL,
        status               TEXT NOT NULL,
        output               TEXT,
        error                TEXT,
        started_s            REAL,
        ended_s              REAL,
        attempts             INTEGER NOT NULL DEFAULT 0,
        prompt_tokens        INTEGER NOT NULL DEFAULT 0,
        generated_tokens     INTEGER NOT NULL DEFAULT 0,
        cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,
        llm_calls            INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, node_id)
    );
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        seq    INTEGER NOT NULL,
        kind   TEXT NOT NULL,
        data   TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    );
    """,
    # 2: the accounting of every node, and which budget limit a run crossed.
    """
    ALTER TABLE nodes ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN tool_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN engine_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN queue_s REAL NOT NULL DEFAULT 0;
    ALTER TABLE nodes ADD COLUMN cost_usd REAL;
    ALTER TABLE runs ADD COLUMN budget_exceeded TEXT;
    """,
    # 3: when the scheduler preempted each node's LLM calls, and when they resumed.
    """
    ALTER TABLE nodes ADD COLUMN preempted TEXT;
    """,
)


class SchemaTooNew(RuntimeError):
    """The file was written by a newer taskloom than this one."""


def connect(path: str) -> sqlite3.Connection:
    """Open (creating if needed) the store at `path`, in WAL mode, at the current schema."""
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30.0
    )
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed node survives a power loss too, not only a killed process.
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA foreign_keys=ON")
    migrate(connection)
    return connection


def migrate(connection: sqlite3.Connection) -> None:
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"the run store is at schema version {version}; this taskloom reads up to "
            f"{SCHEMA_VERSION}. Upgrade taskloom or point --store elsewhere."
        )
    for step in range(version, SCHEMA_VERSION):
        connection.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have just migrated.
            if int(connection.execute("PRAGMA user_version").fetchone()[0]) > step:
                connection.execute("COMMIT")
                continue
            for statement in _MIGRATIONS[step].split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {step + 1}")
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
