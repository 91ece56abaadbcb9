"""The query API's HTTP glue end to end: the real Durable client and aiohttp, against a stub Durable HTTP API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

import azure.durable_functions as df
import azure.functions as func
import pytest
from aiohttp import web
from azure.durable_functions.models.utils import http_utils

import functions.http as http
from devhost.web.routes import compile_route
from shared.errors import LakeError
from shared.state.buckets import bucket_for
from shared.state.keys import encode_key
from shared.state.query_api import key_from_url
from tests.conftest import app_functions
from tests.unit.devhost.web.azure_host_model import azure_request, kestrel_decode
from tests.unit.functions.conftest import user_function

# What the stub Durable HTTP API answers, by (entity name, key): (status, body); others are 404s.
ANSWERS: dict[tuple[str, str], tuple[int, object]] = {("user_activity", "abc"): (200, {"page_views": 42})}


@pytest.fixture
async def durable_api(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[df.DurableOrchestrationClient, list[tuple[str, str]]]]:
    """A Durable client whose HTTP API holds only the per-key entity ``user_activity@abc``; the ids asked for."""
    monkeypatch.setattr(http, "lake", lambda: None)
    monkeypatch.setattr(http, "bucket_counts", lambda *a, **k: SimpleNamespace(of=lambda source: 8))
    monkeypatch.setattr(http_utils, "_client_session", None)  # the SDK's shared session, made on this loop
    asked: list[tuple[str, str]] = []

    async def entity(request: web.Request) -> web.Response:
        asked.append((request.match_info["name"], request.match_info["key"]))
        answer = ANSWERS.get((request.match_info["name"], request.match_info["key"]))
        if answer is None:
            return web.Response(status=404)
        status, body = answer
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/runtime/webhooks/durabletask/entities/{name}/{key}", entity)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    context = {
        "taskHubName": "Hub",
        "creationUrls": {},
        "managementUrls": {},
        "rpcBaseUrl": f"http://127.0.0.1:{runner.addresses[0][1]}/runtime/webhooks/durabletask/",
        "requiredQueryStringParameters": "",
    }
    try:
        yield df.DurableOrchestrationClient(json.dumps(context)), asked
    finally:
        if http_utils._client_session is not None:
            await http_utils._client_session.close()
        await runner.cleanup()


def _get(url: str, key: str) -> func.HttpRequest:
    return func.HttpRequest(method="GET", url=url, body=b"", route_params={"source": "clickstream", "key": key})


async def test_a_key_reads_its_own_state(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
) -> None:
    client, _ = durable_api
    found = await http._read(client, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")
    assert found == {"page_views": 42}


async def test_a_key_ending_in_a_newline_never_reads_the_state_of_the_key_without_it(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
) -> None:
    """``abc\\n`` must reach entity ``abc~0A``: sent raw, URL parsing drops the newline and reads ``abc``."""
    client, asked = durable_api
    found = await http._read(client, _get("https://app.example/api/state/clickstream/abc%0A", "abc\n"), "clickstream")
    assert isinstance(found, func.HttpResponse) and found.status_code == 404, found
    assert ("user_activity", "abc~0A") in asked and ("user_activity", "abc") not in asked


async def test_a_source_named_in_another_case_reads_the_same_state(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
) -> None:
    """Routes match whatever the case of the URL, so ``/api/state/CLICKSTREAM/abc`` is the same query."""
    client, _ = durable_api
    request = func.HttpRequest(
        method="GET",
        url="https://app.example/api/state/CLICKSTREAM/abc",
        body=b"",
        route_params={"source": "CLICKSTREAM", "key": "abc"},
    )
    answer = await user_function("get_state").__wrapped__(req=request, client=client)  # the client as bound
    assert answer.status_code == 200 and json.loads(answer.get_body()) == {"page_views": 42}


KELVIN_SIGN = "\u212a"  # str.lower() makes it an ASCII "k"


async def test_a_source_spelt_with_the_kelvin_sign_is_an_unknown_source_not_clickstream(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
) -> None:
    """Routes fold ASCII letters only (``devhost/web/routes.py``: the Kelvin sign never stands for ``k``), so
    ``clic\u212astream`` is an unknown source (400), never a way to read clickstream's state."""
    client, asked = durable_api
    request = func.HttpRequest(
        method="GET",
        url="https://app.example/api/state/clic%E2%84%AAstream/abc",
        body=b"",
        route_params={"source": f"clic{KELVIN_SIGN}stream", "key": "abc"},
    )
    answer = await user_function("get_state").__wrapped__(req=request, client=client)
    assert answer.status_code == 400, (answer.status_code, json.loads(answer.get_body()))
    assert "unknown source" in json.loads(answer.get_body())["error"] and not asked


def test_the_key_is_not_read_from_a_segment_naming_the_source_with_the_kelvin_sign() -> None:
    """``key_from_url`` finds the source's segment by its ASCII letters whatever their case; a segment spelt
    with the Kelvin sign is another name, so the key is the route's, not the one after that segment."""
    url = "https://app.example/api/state/clic%E2%84%AAstream/a%3Fb"
    assert key_from_url(url, "clickstream", "from-route") == "from-route"
    assert key_from_url("https://app.example/API/State/ClickStream/a%3Fb", "clickstream", "a?b") == "a?b"


async def test_an_unreadable_lake_is_a_503_that_names_no_account_or_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The lake's error text (account host, paths) is logged for the operator, never sent to the caller."""
    detail = "read _state/buckets.json: HTTPSConnection(host='secretlakeacct.blob.core.windows.net') failed"

    def unreadable(_source: str) -> int:
        raise LakeError(detail)

    monkeypatch.setattr(http, "lake", lambda: None)
    monkeypatch.setattr(http, "bucket_counts", lambda *a, **k: SimpleNamespace(of=unreadable))
    with caplog.at_level(logging.ERROR, logger="streamingpoc.http"):
        found = await http._read(None, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")  # type: ignore[arg-type]
    assert isinstance(found, func.HttpResponse) and found.status_code == 503
    assert found.headers["Retry-After"] == "30"
    body = found.get_body().decode()
    assert "secretlakeacct" not in body and "_state" not in body and "unavailable" in body
    assert detail in caplog.text


async def test_a_failing_state_backend_is_a_503_that_names_no_host(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Durable API answering 500 (its backend unavailable) is a retryable 503, not an unhandled error."""
    client, _ = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", "~b1of8"), (500, {"error": "storage host tasksecret unreachable"}))
    with caplog.at_level(logging.ERROR, logger="streamingpoc.http"):
        found = await http._read(client, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")
    assert isinstance(found, func.HttpResponse) and found.status_code == 503, found
    body = found.get_body().decode()
    assert found.headers["Retry-After"] == "30" and "entity state cannot be read" in body and "tasksecret" not in body
    assert "500" in caplog.text


async def test_a_key_whose_stored_state_is_not_an_object_is_shown_as_stored(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Damaged outside this code (docs/reliability.md): answered as stored and named under ``damaged``, not 404."""
    client, _ = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", "~b1of8"), (200, {"keys": {"abc": "[1, 2"}}))
    found = await http._read(client, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")
    assert found == {"damaged": ["state"], "state": "[1, 2"}


@pytest.mark.parametrize(
    "stored",
    [{"keys": ["alice"]}, {"keys": "alice-state"}, ["alice", "bob"]],
    ids=["keys list", "keys text", "list"],
)
async def test_a_damaged_bucket_is_named_not_shown_nor_a_retryable_503(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    stored: object,
) -> None:
    """A bucket holds other keys' state: it was answered whole to a query for any key (a review's finding)."""
    client, _ = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", "~b1of8"), (200, stored))
    with caplog.at_level(logging.ERROR, logger="streamingpoc.http"):
        found = await http._read(client, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")
    assert isinstance(found, func.HttpResponse) and found.status_code == 500, found
    body = json.loads(found.get_body())
    assert body["damaged"] == ["bucket"] and "damaged" in body["error"] and "Retry-After" not in found.headers
    assert json.dumps(stored) not in found.get_body().decode() and "alice" not in found.get_body().decode()
    assert "user_activity@~b1of8" in caplog.text


# The path form and the query form (``GET /api/state/{source}?key=<key>``), through the real handlers, with the
# URL and route values the Functions host hands them in Azure (tests/unit/devhost/web/azure_host_model.py).


def _http_routes() -> dict[str, tuple[Any, dict[str, Any]]]:
    """The app's HTTP functions by name: (their route as a matcher, their trigger binding)."""
    found = {}
    for name, function in app_functions().items():
        for binding in json.loads(function.get_function_json())["bindings"]:
            if binding["type"] == "httpTrigger":
                found[name] = (compile_route(binding["route"]), binding)
    return found


def _matching(path: str) -> dict[str, dict[str, str]]:
    return {name: m.groupdict() for name, (pattern, _) in _http_routes().items() if (m := pattern.fullmatch(path))}


async def _ask(client: df.DurableOrchestrationClient, raw_path: str, query: str = "") -> tuple[int, Any]:
    """Status and JSON body of the request sent as ``raw_path?query``, through the one function its route reaches."""
    url, _ = azure_request(raw_path, query)
    (name, parameters), *others = _matching(_route_path(raw_path)).items()
    assert not others, (name, others)
    request = func.HttpRequest(method="GET", url=url, body=b"", route_params=parameters)
    answer = await user_function(name).__wrapped__(req=request, client=client)
    return answer.status_code, json.loads(answer.get_body())


def _route_path(raw_path: str) -> str:
    """The path below /api/ (any case) as routes match it in Azure: decoded by Kestrel, ``%2F`` kept."""
    return kestrel_decode(raw_path).split("/", 2)[2]


def test_the_query_form_has_its_own_route_and_the_path_forms_auth() -> None:
    """``state/{source}`` has two segments: it takes none of the path forms' requests, and they take none of its."""
    routes = _http_routes()
    assert routes["get_state_by_query"][1]["route"] == "state/{source}"
    bindings = [routes[name][1] for name in ("get_state", "get_sensor_windows", "get_state_by_query")]
    assert {(b["authLevel"], tuple(b["methods"])) for b in bindings} == {(bindings[0]["authLevel"], ("GET",))}
    assert list(_matching("state/sensors")) == ["get_state_by_query"]
    assert list(_matching("STATE/Users")) == ["get_state_by_query"]
    assert list(_matching("state/sensors/windows")) == ["get_state"]
    assert list(_matching("state/sensors/s1/windows")) == ["get_sensor_windows"]


async def test_a_key_holding_percent_hex_never_reads_another_keys_state_through_get_state(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review G: key ``50%41`` sent ``/api/state/clickstream/50%2541`` reached get_state as ``.../50%41`` and was
    answered with the state of ``50A``. Now a 400 naming the query form, and no entity is read."""
    client, asked = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", "50A"), (200, {"page_views": 7}))
    status, body = await _ask(client, "/api/state/clickstream/" + quote("50%41", safe=""))
    assert (status, asked) == (400, []), body
    assert "GET /api/state/clickstream?key=<key>" in body["error"]
    status, body = await _ask(client, "/api/state/clickstream", urlencode({"key": "50%41"}))
    assert status == 404 and body == {"error": "no state for clickstream key '50%41'"}


async def test_a_sensors_key_holding_a_slash_reads_its_own_windows_through_the_query_form(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review G: deployed, ``/api/state/sensors/s1%2Fwindows`` has its ``%2F`` decoded before routing and reaches
    get_sensor_windows for ``s1``, which no function can tell from a request for s1's windows. The query form
    carries the key whole: ``?key=s1%2Fwindows&view=windows`` answers the windows of ``s1/windows``."""
    client, asked = durable_api
    mine, others = [[0, 2, 1.0, 2.0, 3.0]], [[60_000, 1, 9.0, 9.0, 9.0]]
    monkeypatch.setitem(ANSWERS, ("sensor_stats", encode_key("s1/windows")), (200, {"count": 2, "windows": mine}))
    monkeypatch.setitem(ANSWERS, ("sensor_stats", "s1"), (200, {"count": 1, "windows": others}))
    status, body = await _ask(client, "/api/state/sensors", "key=s1%2Fwindows&view=windows")
    assert status == 200 and body == {"windows": [{"start": 0, "count": 2, "min": 1.0, "max": 2.0, "mean": 1.5}]}
    assert ("sensor_stats", "s1") not in asked
    status, body = await _ask(client, "/api/state/sensors", urlencode({"key": "s1/windows"}))
    assert status == 200 and body["count"] == 2  # without view: the whole state, as get_state answers it


QUERY_KEYS = [
    "50%41",
    "%",
    "%2F",
    "a/b",
    "/",
    "s/../?x=1#f",
    "..",
    ".",
    "\u043a\u043b\u044e\u0447",
    "caf\u00e9-1",
    "cafe\u0301-1",
    "\U0001f600",
    " ",
    "\t\n",
    " a  b ",
    "a+b",
    "a&key=b",
    "\x00\x01\x7f",
    "k" * 400,  # the longest key of plain characters
    "\u00e9" * 66,  # 396 characters once encoded
]


@pytest.mark.parametrize("key", QUERY_KEYS, ids=range(len(QUERY_KEYS)))
@pytest.mark.parametrize("encode", [lambda key: urlencode({"key": key}), lambda key: "key=" + quote(key, safe="")])
async def test_the_query_form_reads_any_keys_own_state(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    encode: Any,
) -> None:
    client, asked = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", encode_key(key)), (200, {"page_views": len(key)}))
    status, body = await _ask(client, "/API/State/Clickstream", encode(key) + "&code=function-key")
    assert (status, body) == (200, {"page_views": len(key)})
    assert asked == [("user_activity", bucket_for(key, 8)), ("user_activity", encode_key(key))]


@pytest.mark.parametrize(
    ("key", "error"),
    [("", "entity key is empty"), ("\u00e9" * 67, "402 characters once encoded"), ("k" * 401, "401 characters")],
)
async def test_the_query_form_refuses_a_key_no_entity_can_take(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]], key: str, error: str
) -> None:
    client, asked = durable_api
    status, body = await _ask(client, "/api/state/clickstream", urlencode({"key": key}))
    assert status == 400 and error in body["error"] and not asked


@pytest.mark.parametrize(
    ("path_form", "query_form"),
    [
        (("/api/state/clickstream/abc", ""), ("/api/state/clickstream", "key=abc")),
        (("/api/state/clickstream/nope", ""), ("/api/state/clickstream", "key=nope")),
        (("/api/state/nope/abc", ""), ("/api/state/nope", "key=abc")),
        (("/api/state/orders/abc", ""), ("/api/state/orders", "key=abc")),
        (("/api/state/clickstream/" + "%C3%A9" * 67, ""), ("/api/state/clickstream", "key=" + "%C3%A9" * 67)),
        (("/api/state/sensors/s9/windows", ""), ("/api/state/sensors", "key=s9&view=windows")),
        (("/api/state/users/abc/windows", ""), ("/api/state/users", "key=abc&view=windows")),
    ],
)
async def test_the_two_forms_give_the_same_answers(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    path_form: tuple[str, str],
    query_form: tuple[str, str],
) -> None:
    client, _ = durable_api
    if _matching(_route_path(path_form[0])):
        assert await _ask(client, *path_form) == await _ask(client, *query_form)
    else:  # no path route for a user's windows: the query form says why instead of a 404
        status, body = await _ask(client, *query_form)
        assert status == 400 and "view=windows is for sensors only" in body["error"]


async def test_the_query_form_answers_503_as_the_path_form_does(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable(_source: str) -> int:
        raise LakeError("down")

    monkeypatch.setattr(http, "lake", lambda: None)
    monkeypatch.setattr(http, "bucket_counts", lambda *a, **k: SimpleNamespace(of=unreadable))
    answers = [await _ask(None, "/api/state/clickstream/abc"), await _ask(None, "/api/state/clickstream", "key=abc")]  # type: ignore[arg-type]
    assert answers[0] == answers[1] and answers[0][0] == 503


@pytest.mark.parametrize("query_form", [False, True])
async def test_a_sensors_windows_that_cannot_be_read_are_named_not_shown_as_none(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    query_form: bool,
) -> None:
    """Review 15: a state whose minutes are damaged (outside this code) answered ``{"windows": []}``, as if the
    sensor had no reading in the hour, while the full view named the damage."""
    client, _ = durable_api
    monkeypatch.setitem(ANSWERS, ("sensor_stats", "s1"), (200, {"count": 3, "minutes": [["x"]]}))
    asked = ("/api/state/sensors", "key=s1&view=windows") if query_form else ("/api/state/sensors/s1/windows", "")
    status, body = await _ask(client, *asked)
    assert status == 200 and body["windows"] == []
    assert [note.split(":")[0] for note in body["damaged"]] == ["windows"]
