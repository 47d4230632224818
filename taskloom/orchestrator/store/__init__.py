"""The durable run store: one SQLite file (WAL mode) holding every run, every node's
result the moment it finished, and every run's event stream."""

from taskloom.orchestrator.store.records import RunRow, StoredEvent, StoredStatus
from taskloom.orchestrator.store.run_store import RunNotFound, RunStore, default_store_path

__all__ = [
    "RunNotFound",
    "RunRow",
    "RunStore",
    "StoredEvent",
    "StoredStatus",
    "default_store_path",
]
