"""A Host header that is not ``host[:port]`` and a dashboard file name too long for the file system are client
errors answered before anything runs, not 500s with a traceback in the host's log (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import azure.functions as func
import pytest
from aiohttp.test_utils import TestServer

from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import HostStats
from devhost.web.routes import http_routes
from devhost.web.server import HttpFrontEnd

_STATE = IndexedFunction(
    "get_state", ({"type": "httpTrigger", "name": "req", "route": "state/{key}"},), lambda req: None, None
)


class _Invoker:
    def __init__(self) -> None:
        self.calls = 0

    def invoke(self, _function: IndexedFunction, _arguments: dict[str, func.HttpRequest]) -> str:
        self.calls += 1
        return "ran"


@pytest.fixture
async def host() -> AsyncIterator[tuple[int, _Invoker]]:
    invoker = _Invoker()
    stats = HostStats()
    stats.add(_STATE.name, "httpTrigger")
    front = HttpFrontEnd(http_routes([_STATE]), invoker, None, stats, dashboard_snapshot=None)  # type: ignore[arg-type]
    server = TestServer(front.application(), host="127.0.0.1")
    await server.start_server()
    try:
        yield server.port, invoker  # type: ignore[misc]
    finally:
        await server.close()


async def _status(port: int, target: str, host: str) -> int:
    """The status line's code for ``GET target`` sent with exactly this Host header (no client rewrites it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    return int(status_line.split()[1])


@pytest.mark.parametrize("host_header", ["localhost:abc", "localhost:99999", "127.0.0.1:7071 x", "[::1", "[::1]x"])
async def test_a_host_header_that_is_not_host_and_port_is_a_bad_request_and_runs_nothing(
    host: tuple[int, _Invoker], host_header: str, caplog: pytest.LogCaptureFixture
) -> None:
    port, invoker = host
    assert await _status(port, "/api/state/a", host_header) == 400
    assert await _status(port, "/admin/host/status", host_header) == 400
    assert invoker.calls == 0
    assert not [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("host_header", ["127.0.0.1:{port}", "localhost", "LOCALHOST:{port}", "[::1]:{port}"])
async def test_a_loopback_host_header_still_reaches_the_function(host: tuple[int, _Invoker], host_header: str) -> None:
    port, invoker = host
    assert await _status(port, "/api/state/a", host_header.format(port=port)) == 200
    assert invoker.calls == 1


async def test_a_dashboard_file_name_too_long_for_the_file_system_is_not_found(
    host: tuple[int, _Invoker], caplog: pytest.LogCaptureFixture
) -> None:
    port, _ = host
    assert await _status(port, "/dashboard/" + "a" * 300 + ".js", "127.0.0.1") == 404
    assert await _status(port, "/dashboard/server.py", "127.0.0.1") == 404
    assert await _status(port, "/dashboard/dashboard.js", "127.0.0.1") == 200
    assert not [record for record in caplog.records if record.exc_info]
