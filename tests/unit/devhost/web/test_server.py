"""The local host's entity API answers programs on this machine, never a web page (real HTTP on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from devhost.runtime.function_stats import HostStats
from devhost.web.server import DURABLE_PREFIX, HttpFrontEnd

SIGNAL = DURABLE_PREFIX + "/entities/device_activity/device-1?op=apply"


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    front = HttpFrontEnd([], invoker=None, entities=None, stats=HostStats(), dashboard_snapshot=None)  # type: ignore[arg-type]
    server = TestServer(front.application(), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def _status(base_url: str, method: str, path: str, **kwargs: object) -> int:
    async with ClientSession() as session, session.request(method, base_url + path, **kwargs) as response:  # type: ignore[arg-type]
        return response.status


async def test_a_program_on_this_machine_reaches_the_entity_api(base_url: str) -> None:
    # 404: past the guard, to the entity runtime (this test host has no entity functions)
    assert await _status(base_url, "POST", SIGNAL, json={"events": []}) == 404
    assert await _status(base_url, "GET", DURABLE_PREFIX + "/entities/device_activity/device-1") == 404


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},  # a page's fetch or form post
        {"Origin": "null"},  # a sandboxed frame or a file: page
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "attacker.example:7071"},  # DNS rebinding: the browser thinks it talks to the attacker's name
    ],
)
async def test_what_a_browser_sends_is_refused(base_url: str, headers: dict[str, str]) -> None:
    assert await _status(base_url, "POST", SIGNAL, json={"events": []}, headers=headers) == 403
    assert await _status(base_url, "GET", DURABLE_PREFIX + "/entities/device_activity/device-1", headers=headers) == 403


async def test_a_signal_a_form_could_send_is_refused(base_url: str) -> None:
    form = {"data": "events=[]", "headers": {"Content-Type": "application/x-www-form-urlencoded"}}
    assert await _status(base_url, "POST", SIGNAL, **form) == 415
    text = {"data": '{"events": []}', "headers": {"Content-Type": "text/plain"}}
    assert await _status(base_url, "POST", SIGNAL, **text) == 415
