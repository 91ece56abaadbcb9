"""The local host (entity API, /api, the dashboard, the registry under /registry) answers programs on this
machine, never a web page (real HTTP on loopback)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import azure.functions as func
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from yarl import URL

from devhost.registry.server import MOUNT, registry_app
from devhost.registry.store import RegistryStore
from devhost.runtime.catalog import IndexedFunction
from devhost.runtime.function_stats import HostStats
from devhost.web.routes import http_routes
from devhost.web.server import DURABLE_PREFIX, HttpFrontEnd
from shared.schema_registry.client import ConfluentRegistry

SIGNAL = DURABLE_PREFIX + "/entities/device_activity/device-1?op=apply"
REGISTER = MOUNT + "/subjects/orders-value/versions"
SCHEMA = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    mounts = {MOUNT: registry_app(RegistryStore(None))}
    front = HttpFrontEnd([], invoker=None, entities=None, stats=HostStats(), dashboard_snapshot=None, mounts=mounts)  # type: ignore[arg-type]
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


@pytest.mark.parametrize(
    "headers",
    [
        # a no-cors fetch with a text/plain body: a "simple request", sent without a preflight
        {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site", "Content-Type": "text/plain"},
        {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/vnd.schemaregistry.v1+json"},
        {"Host": "rebind.attacker.example:7071", "Content-Type": "application/vnd.schemaregistry.v1+json"},
    ],
)
async def test_the_mounted_registry_refuses_what_a_browser_sends(base_url: str, headers: dict[str, str]) -> None:
    assert await _status(base_url, "POST", REGISTER, data=json.dumps({"schema": SCHEMA}), headers=headers) == 403
    assert await _status(base_url, "GET", MOUNT + "/subjects", headers=headers) == 403
    assert await _status(base_url, "GET", "/api/state/clickstream/a", headers=headers) == 403
    assert await _status(base_url, "GET", "/dashboard/api/stats", headers=headers) == 403


async def test_a_registry_write_a_form_could_send_is_refused(base_url: str) -> None:
    text = {"data": json.dumps({"schema": SCHEMA}), "headers": {"Content-Type": "text/plain"}}
    assert await _status(base_url, "POST", REGISTER, **text) == 415


async def test_the_registry_client_and_the_dashboard_still_reach_the_host(base_url: str) -> None:
    registry = ConfluentRegistry(base_url + MOUNT)  # sends application/vnd.schemaregistry.v1+json
    schema_id = await asyncio.to_thread(registry.register, "orders-value", SCHEMA)
    assert await asyncio.to_thread(registry.schema_text, schema_id) == ("AVRO", SCHEMA)
    same_origin = {"Sec-Fetch-Site": "same-origin"}  # the dashboard page's own fetches: no Origin on a GET
    assert await _status(base_url, "GET", "/dashboard/api/stats", headers=same_origin) == 200
    assert await _status(base_url, "GET", "/dashboard", headers={"Sec-Fetch-Site": "none"}) == 200
    assert await _status(base_url, "GET", "/api/state/clickstream/a", headers=same_origin) == 404  # past the guard


class _RecordingInvoker:
    """Answers an HTTP function with the route values it was given, and remembers each call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []
        self.urls: list[str] = []

    def invoke(self, _function: IndexedFunction, arguments: dict[str, func.HttpRequest]) -> dict[str, str]:
        self.calls.append(dict(arguments["req"].route_params))
        self.urls.append(arguments["req"].url)
        return self.calls[-1]


_STATE = IndexedFunction(
    "get_state", ({"type": "httpTrigger", "name": "req", "route": "state/{source}/{key}"},), lambda req: None, None
)
_BY_QUERY = IndexedFunction(
    "get_state_by_query", ({"type": "httpTrigger", "name": "req", "route": "state/{source}"},), lambda req: None, None
)


@pytest.fixture
async def routed() -> AsyncIterator[tuple[str, _RecordingInvoker]]:
    invoker = _RecordingInvoker()
    stats = HostStats()
    stats.add(_STATE.name, "httpTrigger")
    stats.add(_BY_QUERY.name, "httpTrigger")
    mounts = {MOUNT: registry_app(RegistryStore(None))}
    front = HttpFrontEnd(http_routes([_STATE, _BY_QUERY]), invoker, None, stats, dashboard_snapshot=None, mounts=mounts)  # type: ignore[arg-type]
    server = TestServer(front.application(), host="127.0.0.1")
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", invoker
    finally:
        await server.close()


_API_PATHS = ["/api/state/Users/AbC", "/API/STATE/Users/AbC", "/Api/State/Users/AbC/", "/%41pi/state/Users/AbC"]


@pytest.mark.parametrize("path", _API_PATHS)
async def test_an_http_function_is_reached_whatever_the_case_of_api_and_its_route(
    routed: tuple[str, _RecordingInvoker], path: str
) -> None:
    # As in Azure, where ASP.NET Core routing compares literals ignoring case; values keep the case sent.
    base_url, invoker = routed
    async with ClientSession() as session, session.get(URL(base_url + path, encoded=True)) as response:
        assert response.status == 200
        assert await response.json() == {"source": "Users", "key": "AbC"}
    assert invoker.calls == [{"source": "Users", "key": "AbC"}]


@pytest.mark.parametrize(
    ("sent", "key", "handed"),
    [
        ("/api/state/users/50%2541", "50%41", "/api/state/users/50%41"),  # review G: decoded once too often
        ("/api/state/users/a%2Fb", "a%2Fb", "/api/state/users/a%2Fb"),  # %2F stays encoded, in its segment
        ("/api/state/users/%41%62c", "Abc", "/api/state/users/Abc"),
        ("/api/state/users/caf%C3%A9%20%3F", "caf\u00e9 ?", "/api/state/users/caf%C3%A9%20%3F"),
        ("/api/state/users/%FF", "%FF", "/api/state/users/%FF"),
        ("/api/state/users/a%2F..%2Fb", "a%2F..%2Fb", "/api/state/users/a%2F..%2Fb"),
        ("/api/state/sensors/%2E/x", "x", "/api/state/sensors/x"),  # dot segments go after decoding
    ],
)
async def test_a_function_is_handed_the_request_the_functions_host_would_hand_it(
    routed: tuple[str, _RecordingInvoker], sent: str, key: str, handed: str
) -> None:
    """The URL from Kestrel's decoded path and the route values matched on it, as in Azure, not the URL as sent:
    so local tests see what a function sees when deployed (devhost/web/host_url.py)."""
    base_url, invoker = routed
    async with ClientSession() as session, session.get(URL(base_url + sent + "?code=x%3D", encoded=True)) as answer:
        assert answer.status == 200
    assert invoker.urls == [base_url + handed + "?code=x%3D"]
    assert invoker.calls[0]["key"] == key


async def test_the_query_form_reaches_its_function_with_the_query_as_sent(
    routed: tuple[str, _RecordingInvoker],
) -> None:
    base_url, invoker = routed
    query = "key=50%2541+%2B%2F%25&view=windows&key="
    async with (
        ClientSession() as session,
        session.get(URL(f"{base_url}/API/State/sensors/?{query}", encoded=True)) as got,
    ):
        assert got.status == 200
    assert invoker.calls == [{"source": "sensors"}]
    assert invoker.urls == [f"{base_url}/API/State/sensors/?{query}"]


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        ("/api/state/users/%2E%2E", 404),  # /api/state: no function
        ("/api/%2E%2E/admin/host/status", 404),  # /admin/host/status, which is not under /api
        ("/api/state/users/a%00b", 400),  # Kestrel refuses a NUL before any function runs
    ],
)
async def test_a_path_azure_never_hands_a_function_reaches_none(
    routed: tuple[str, _RecordingInvoker], sent: str, status: int
) -> None:
    base_url, invoker = routed
    assert await _status_as_sent(base_url, "GET", sent) == status
    assert invoker.calls == []


async def test_the_host_paths_of_the_functions_host_match_whatever_their_case(base_url: str) -> None:
    async with ClientSession() as session:
        async with session.get(base_url + "/ADMIN/Host/Status") as response:
            assert response.status == 200
            assert (await response.json())["state"] == "Running"
        entity = "/Runtime/Webhooks/DurableTask/Entities/device_activity/Device-1"
        async with session.get(base_url + entity) as response:  # to the entity API (this host has no entities)
            assert response.status == 404
            assert await response.json() == {"error": "this app has no entity functions"}
    # Only ASCII letters fold: "ſ" (long s, sent encoded) does not stand for "s"
    assert await _status_as_sent(base_url, "GET", "/admin/ho%C5%BFt/status") == 404


async def _status_as_sent(base_url: str, method: str, path: str, **kwargs: object) -> int:
    """The status for ``path`` sent as written (``%61pi`` stays encoded, not requoted to ``api``)."""
    url = URL(base_url + path, encoded=True)
    async with ClientSession() as session, session.request(method, url, **kwargs) as response:  # type: ignore[arg-type]
        return response.status


_ANY_CASE_PATHS = [
    "/API/state/clickstream/a",
    "/Api/STATE/users/1",
    "/%61pi/state/users/1",
    "/RUNTIME/webhooks/DurableTask/entities/device_activity/device-1?op=apply",
    "/Admin/Host/Status",
    "/DASHBOARD/api/stats",
    "/Registry/subjects/orders-value/versions",
]


@pytest.mark.parametrize("path", _ANY_CASE_PATHS)
@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://attacker.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Host": "attacker.example:7071"},
    ],
)
async def test_a_differently_cased_path_does_not_get_past_the_guard(
    routed: tuple[str, _RecordingInvoker], path: str, headers: dict[str, str]
) -> None:
    base_url, invoker = routed
    assert await _status_as_sent(base_url, "GET", path, headers=headers) == 403
    assert await _status_as_sent(base_url, "POST", path, json={"events": []}, headers=headers) == 403
    assert invoker.calls == []


@pytest.mark.parametrize("path", _ANY_CASE_PATHS)
async def test_a_body_a_form_could_send_to_a_differently_cased_path_is_refused(
    routed: tuple[str, _RecordingInvoker], path: str
) -> None:
    base_url, invoker = routed
    for content_type in ("application/x-www-form-urlencoded", "text/plain"):
        headers = {"Content-Type": content_type}
        assert await _status_as_sent(base_url, "POST", path, data="events=[]", headers=headers) == 415
    assert invoker.calls == []


class _Signals:
    """An entity runtime that keeps what it is signalled."""

    def __init__(self) -> None:
        self.received: list[str | None] = []

    async def signal(self, name: str, key: str, operation: str, body: str | None) -> None:
        self.received.append(body)


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"\xff\xfe not UTF-8", "application/json", 400),
        (b'{"parts": []}', "application/json; charset=nonexistent", 202),
        (b'{"parts": []}', "application/json", 202),
    ],
)
async def test_a_signal_body_is_read_as_utf_8_json_and_bad_bytes_are_a_400(
    body: bytes, content_type: str, status: int
) -> None:
    """A body that is not UTF-8, or a charset Python does not know, was a 500 with a traceback in the host's log
    (UnicodeDecodeError, LookupError: a review's cases)."""
    entities = _Signals()
    front = HttpFrontEnd([], invoker=None, entities=entities, stats=HostStats(), dashboard_snapshot=None)  # type: ignore[arg-type]
    server = TestServer(front.application(), host="127.0.0.1")
    await server.start_server()
    try:
        url = f"http://127.0.0.1:{server.port}{SIGNAL}"
        async with (
            ClientSession() as session,
            session.post(url, data=body, headers={"Content-Type": content_type}) as reply,
        ):
            assert reply.status == status
    finally:
        await server.close()
    assert entities.received == ([] if status == 400 else ['{"parts": []}'])
