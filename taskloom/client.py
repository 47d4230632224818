"""`taskloom.Client`: a taskloom server, from Python (sync, on httpx).

    with taskloom.Client("http://127.0.0.1:8321", api_key="k") as client:
        run_id = client.submit(program="quickstart", inputs={"topic": "tea"})
        result = client.wait(run_id)        # the same object as `taskloom run --json`
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from taskloom.errors import TaskloomError


class ServerError(TaskloomError):
    """The server refused a request; `errors` holds located spec errors, if any."""

    def __init__(self, status: int, message: str, errors: list[str] | None = None) -> None:
        self.status = status
        self.message = message
        self.errors = errors or []
        super().__init__("\n".join([f"{status}: {message}", *self.errors]))


@dataclass(frozen=True)
class ServerEvent:
    """One Server-Sent Event of a run: `node` (a node changed state) or `result`."""

    seq: int
    kind: str
    data: dict[str, Any]


class Client:
    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def submit(
        self,
        spec: str | Path | None = None,
        *,
        program: str | None = None,
        inputs: Mapping[str, Any] | None = None,
        policy: str | None = None,
        budget: Mapping[str, float] | None = None,
    ) -> str:
        """Start a run of `spec` (YAML text, or a path to a spec file) or of the server's
        program called `program`; returns the run id at once. `budget`: limits by name
        (`{"llm_calls": 20}`), tightening the spec's and the server's."""
        body: dict[str, Any] = {"inputs": dict(inputs or {})}
        if spec is not None:
            body["spec"] = spec.read_text(encoding="utf-8") if isinstance(spec, Path) else spec
        if program is not None:
            body["program"] = program
        if policy is not None:
            body["policy"] = policy
        if budget:
            body["budget"] = dict(budget)
        return str(self._call("POST", "/v1/runs", json=body)["run_id"])

    def get(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/v1/runs/{run_id}")

    def runs(self, *, status: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        runs: list[dict[str, Any]] = self._call("GET", "/v1/runs", params=params)["runs"]
        return runs

    def cancel(self, run_id: str) -> dict[str, Any]:
        return self._call("POST", f"/v1/runs/{run_id}/cancel")

    def programs(self) -> list[dict[str, Any]]:
        programs: list[dict[str, Any]] = self._call("GET", "/v1/programs")["programs"]
        return programs

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/healthz")

    def events(self, run_id: str, *, after: int = 0, retries: int = 5) -> Iterator[ServerEvent]:
        """The run's events from number `after` on, ending with `result`. A dropped
        stream is picked up again where it stopped (Last-Event-ID)."""
        failures = 0
        while True:
            try:
                for event in self._stream(run_id, after):
                    failures = 0
                    after = event.seq
                    yield event
                    if event.kind == "result":
                        return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > retries:
                    raise

    def wait(self, run_id: str) -> dict[str, Any]:
        """Block until the run ends; its `run --json` object."""
        for event in self.events(run_id):
            if event.kind == "result":
                return event.data
        return self.get(run_id)

    def _stream(self, run_id: str, after: int) -> Iterator[ServerEvent]:
        headers = {"Last-Event-ID": str(after)}
        no_read_limit = httpx.Timeout(self._http.timeout.connect, read=None)
        with self._http.stream("GET", f"/v1/runs/{run_id}/events", headers=headers,
                               timeout=no_read_limit) as reply:
            if reply.status_code >= 400:
                reply.read()
                _raise_for(reply)
            yield from parse_sse(reply.iter_lines())

    def _call(self, method: str, path: str, **options: Any) -> dict[str, Any]:
        reply = self._http.request(method, path, **options)
        if reply.status_code >= 400:
            _raise_for(reply)
        data: dict[str, Any] = reply.json()
        return data


def parse_sse(lines: Iterator[str]) -> Iterator[ServerEvent]:
    seq, kind, data = 0, "message", list[str]()
    for line in lines:
        if not line:
            if data:
                yield ServerEvent(seq, kind, json.loads("\n".join(data)))
            seq, kind, data = 0, "message", []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id" and value.isdigit():
                seq = int(value)
            elif name == "event":
                kind = value
            elif name == "data":
                data.append(value)


def _raise_for(reply: httpx.Response) -> None:
    try:
        body = reply.json()
    except ValueError:
        raise ServerError(reply.status_code, reply.text or reply.reason_phrase) from None
    if not isinstance(body, dict):
        raise ServerError(reply.status_code, str(body))
    raise ServerError(reply.status_code, str(body.get("error") or body.get("detail") or body),
                      [str(e) for e in body.get("errors", [])])
