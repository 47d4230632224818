from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from taskloom.errors import ToolError
from taskloom.tools.builtin import http_get_tool

BIG_BODY_BYTES = 200_000


@dataclass(frozen=True)
class LocalServer:
    port: int
    release: threading.Event

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(release: threading.Event) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes = {
                "/hello": self._hello,
                "/big": self._big,
                "/slow": self._slow,
                "/redirect": self._redirect,
                "/latin1": self._latin1,
            }
            routes.get(self.path, self._missing)()

        def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _hello(self) -> None:
            headers = {"Content-Type": "text/plain; charset=utf-8", "X-Secret": "token"}
            self._reply(200, "hello ✓".encode(), headers)

        def _big(self) -> None:
            self._reply(200, b"x" * BIG_BODY_BYTES, {"Content-Type": "text/plain"})

        def _slow(self) -> None:
            release.wait(timeout=5)
            self._reply(200, b"late", {})

        def _redirect(self) -> None:
            self._reply(302, b"", {"Location": "http://evil.example/"})

        def _latin1(self) -> None:
            self._reply(
                200, "café".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}
            )

        def _missing(self) -> None:
            self._reply(404, b"no such page", {"Content-Type": "text/plain"})

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[LocalServer]:
    release = threading.Event()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(release))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield LocalServer(port=httpd.server_address[1], release=release)
    release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.anyio
async def test_fetches_status_headers_and_text(server: LocalServer) -> None:
    http_get = http_get_tool(["127.0.0.1"])
    result = await http_get.call({"url": server.url("/hello")})
    assert result["status"] == 200
    assert result["text"] == "hello ✓"
    assert result["truncated"] is False
    assert result["url"] == server.url("/hello")
    assert result["headers"]["content-type"] == "text/plain; charset=utf-8"
    assert "x-secret" not in result["headers"]


@pytest.mark.anyio
async def test_error_status_is_returned_not_raised(server: LocalServer) -> None:
    result = await http_get_tool(["127.0.0.1"]).call({"url": server.url("/nope")})
    assert (result["status"], result["text"]) == (404, "no such page")


@pytest.mark.anyio
async def test_declared_charset_is_used(server: LocalServer) -> None:
    result = await http_get_tool(["127.0.0.1"]).call({"url": server.url("/latin1")})
    assert result["text"] == "café"


@pytest.mark.anyio
async def test_port_specific_allow_entry(server: LocalServer) -> None:
    allowed = http_get_tool([f"127.0.0.1:{server.port}"])
    assert (await allowed.call({"url": server.url("/hello")}))["status"] == 200
    other_port = http_get_tool(["127.0.0.1:1"])
    with pytest.raises(ToolError, match="not allowed"):
        await other_port.call({"url": server.url("/hello")})


@pytest.mark.anyio
async def test_body_is_cut_at_max_bytes(server: LocalServer) -> None:
    http_get = http_get_tool(["127.0.0.1"], max_bytes=1000)
    result = await http_get.call({"url": server.url("/big")})
    assert result["truncated"] is True
    assert result["text"] == "x" * 1000


@pytest.mark.anyio
async def test_slow_response_times_out(server: LocalServer) -> None:
    http_get = http_get_tool(["127.0.0.1"], timeout_s=0.3)
    with pytest.raises(ToolError, match=r"took longer than 0\.3 s"):
        await http_get.call({"url": server.url("/slow")})


@pytest.mark.anyio
async def test_redirects_are_returned_not_followed(server: LocalServer) -> None:
    result = await http_get_tool(["127.0.0.1"]).call({"url": server.url("/redirect")})
    assert result["status"] == 302
    assert result["headers"]["location"] == "http://evil.example/"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://localhost/hello", "host 'localhost' is not allowed"),
        ("http://127.0.0.1.evil.net/", "not allowed"),
        ("ftp://127.0.0.1/file", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("not a url", "only http and https|not a valid URL"),
    ],
)
async def test_refusals(url: str, complaint: str) -> None:
    with pytest.raises(ToolError, match=complaint):
        await http_get_tool(["127.0.0.1"]).call({"url": url})


@pytest.mark.anyio
async def test_no_allowed_hosts_refuses_everything() -> None:
    with pytest.raises(ToolError, match=r"allowed hosts: none \(pass allowed_hosts\)"):
        await http_get_tool([]).call({"url": "https://example.com/"})


def _mock_transport(seen: list[httpx.Request]) -> httpx.MockTransport:
    def respond(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text=f"from {request.url.host}")

    return httpx.MockTransport(respond)


@pytest.mark.anyio
async def test_wildcard_subdomains_with_mock_transport() -> None:
    seen: list[httpx.Request] = []
    http_get = http_get_tool(["*.example.com"], transport=_mock_transport(seen))
    result = await http_get.call({"url": "https://api.example.com/v1"})
    assert result["text"] == "from api.example.com"
    assert seen[0].headers["accept-encoding"] == "identity"
    for refused in ("https://example.com.evil.net/", "https://badexample.com/"):
        with pytest.raises(ToolError, match="not allowed"):
            await http_get.call({"url": refused})
    assert len(seen) == 1


@pytest.mark.anyio
async def test_default_port_matches_a_port_entry() -> None:
    seen: list[httpx.Request] = []
    http_get = http_get_tool(["example.com:443"], transport=_mock_transport(seen))
    assert (await http_get.call({"url": "https://example.com/"}))["status"] == 200
    with pytest.raises(ToolError, match="not allowed"):
        await http_get.call({"url": "http://example.com/"})


@pytest.mark.anyio
async def test_transport_failure_becomes_tool_error() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    http_get = http_get_tool(["example.com"], transport=httpx.MockTransport(fail))
    with pytest.raises(ToolError, match="ConnectError: connection refused") as caught:
        await http_get.call({"url": "https://example.com/"})
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_bad_allow_entry_is_refused_when_building_the_tool() -> None:
    with pytest.raises(ValueError, match="not a number"):
        http_get_tool(["example.com:http"])
