"""http_get: GET requests to an allow-list of hosts, capped in size and time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import httpx

from taskloom.errors import ToolError
from taskloom.tools.tool import Tool, tool

DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_TIMEOUT_S = 10.0
# The headers worth showing a model; the rest (cookies, server banners) are noise or secrets.
KEPT_HEADERS = (
    "content-type",
    "content-length",
    "content-language",
    "last-modified",
    "etag",
    "location",
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HostAllowList:
    """Which hosts http_get may reach.

    Entries: "example.com" (any port), "example.com:8080" (that port only),
    "*.example.com" (any subdomain), "[::1]:8000" (IPv6), or "*" (any host).
    """

    entries: tuple[tuple[str, int | None], ...]

    @classmethod
    def of(cls, hosts: Sequence[str]) -> HostAllowList:
        return cls(tuple(_parse_entry(host.strip().lower()) for host in hosts if host.strip()))

    def allows(self, host: str, port: int | None) -> bool:
        return any(_entry_allows(entry, host.lower(), port) for entry in self.entries)

    def describe(self) -> str:
        shown = [host if port is None else f"{host}:{port}" for host, port in self.entries]
        return ", ".join(shown) or "none (pass allowed_hosts)"


def _parse_entry(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, _, port_text = entry.partition(":")
    else:
        host, port_text = entry, ""
    if port_text and not port_text.isdigit():
        raise ValueError(f"allowed host {entry!r} has a port that is not a number")
    return host, int(port_text) if port_text else None


def _entry_allows(entry: tuple[str, int | None], host: str, port: int | None) -> bool:
    entry_host, entry_port = entry
    if entry_port is not None and entry_port != port:
        return False
    if entry_host == "*":
        return True
    if entry_host.startswith("*."):
        return host.endswith(entry_host[1:])
    return host == entry_host


def http_get_tool(
    allowed_hosts: Sequence[str],
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Tool:
    """An `http_get` tool that reaches only `allowed_hosts` (see `HostAllowList`).

    Bodies longer than `max_bytes` are cut there (`truncated` is then true); a request
    taking longer than `timeout_s` in all fails. `transport` is for tests
    (`httpx.MockTransport`). Redirects are returned, not followed, so that a redirect
    cannot lead off the allow-list.
    """
    allow_list = HostAllowList.of(allowed_hosts)

    async def http_get(url: str) -> dict[str, Any]:
        """Fetch a URL with HTTP GET; returns url, status, headers, text and truncated.

        Args:
            url: An http:// or https:// URL on one of the allowed hosts.
        """
        target = _checked_url(url, allow_list)
        try:
            with anyio.fail_after(timeout_s):
                return await _fetch(target, max_bytes, timeout_s, transport)
        except TimeoutError:
            raise ToolError(f"http_get: {url} took longer than {timeout_s} s") from None
        except httpx.HTTPError as exc:
            raise ToolError(f"http_get: {url} failed: {type(exc).__name__}: {exc}") from exc

    return tool(http_get)


def _checked_url(url: str, allow_list: HostAllowList) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolError(f"http_get: {url!r} is not a valid URL: {exc}") from None
    if target.scheme not in ("http", "https"):
        raise ToolError(f"http_get: only http and https URLs are allowed, not {url!r}")
    port = target.port or _DEFAULT_PORTS[target.scheme]
    if not target.host or not allow_list.allows(target.host, port):
        raise ToolError(
            f"http_get: host '{target.host}' is not allowed; allowed hosts: {allow_list.describe()}"
        )
    return target


async def _fetch(
    url: httpx.URL,
    max_bytes: int,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None,
) -> dict[str, Any]:
    # identity encoding: a compressed body could inflate far past max_bytes per chunk.
    headers = {"accept-encoding": "identity"}
    async with (
        httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False) as client,
        client.stream("GET", url, headers=headers) as response,
    ):
        body, truncated = await _read_capped(response, max_bytes)
        return {
            "url": str(response.url),
            "status": response.status_code,
            "headers": {k: response.headers[k] for k in KEPT_HEADERS if k in response.headers},
            "text": _decode(body, response.charset_encoding),
            "truncated": truncated,
        }


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    """The body up to `max_bytes`; stops reading (and the download) once past it."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body.extend(chunk)
        if len(body) > max_bytes:
            return bytes(body[:max_bytes]), True
    return bytes(body), False


def _decode(body: bytes, charset: str | None) -> str:
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset name Python does not know
        return body.decode("utf-8", errors="replace")
