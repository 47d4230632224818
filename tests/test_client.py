"""`taskloom.Client` on a mock transport: errors, and a dropped event stream picked up
again with Last-Event-ID."""

from __future__ import annotations

import json

import httpx
import pytest

from taskloom.client import Client, ServerError, parse_sse


def _sse(*events: tuple[int, str, dict[str, object]]) -> bytes:
    return "".join(f"id: {seq}\nevent: {kind}\ndata: {json.dumps(data)}\n\n"
                   for seq, kind, data in events).encode()


def test_parse_sse_reads_ids_kinds_and_data_and_skips_comments() -> None:
    lines = ["id: 3", "event: node", 'data: {"a": 1}', "", ": keep-alive", "",
             "id: 4", "event: result", 'data: {"b": 2}', ""]
    events = list(parse_sse(iter(lines)))
    assert [(e.seq, e.kind, e.data) for e in events] == [(3, "node", {"a": 1}),
                                                         (4, "result", {"b": 2})]


def test_a_dropped_stream_resumes_after_the_last_event_it_saw() -> None:
    asked_after: list[str] = []

    class Dropping(httpx.ByteStream):
        def __iter__(self):  # type: ignore[no-untyped-def]
            yield from super().__iter__()
            raise httpx.ReadError("connection dropped")

    def handler(request: httpx.Request) -> httpx.Response:
        after = request.headers["last-event-id"]
        asked_after.append(after)
        if after == "0":
            return httpx.Response(200, stream=Dropping(_sse((1, "node", {"n": 1}),
                                                           (2, "node", {"n": 2}))))
        return httpx.Response(200, content=_sse((3, "result", {"status": "succeeded"})))

    with Client("http://server", transport=httpx.MockTransport(handler)) as client:
        events = list(client.events("r1"))
    assert [e.seq for e in events] == [1, 2, 3]
    assert asked_after == ["0", "2"]


def test_a_refusal_is_a_server_error_with_its_status_and_located_errors() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer k"
        return httpx.Response(422, json={"error": "the spec has errors",
                                         "errors": ["<request>:3:5: node 'a': bad"]})

    transport = httpx.MockTransport(handler)
    with Client("http://server", api_key="k", transport=transport) as client, \
            pytest.raises(ServerError) as refused:
        client.submit("name: x")
    assert refused.value.status == 422
    assert refused.value.errors == ["<request>:3:5: node 'a': bad"]
    assert "<request>:3:5" in str(refused.value)
