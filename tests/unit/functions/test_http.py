"""The query API's HTTP glue end to end: the real Durable client and aiohttp, against a stub Durable HTTP API."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace

import azure.durable_functions as df
import azure.functions as func
import pytest
from aiohttp import web
from azure.durable_functions.models.utils import http_utils

import functions.http as http
from shared.errors import LakeError
from shared.state.query_api import key_from_url
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
    url = "https://app.example/api/state/clic%E2%84%AAstream/a%2Fb"
    assert key_from_url(url, "clickstream", "from-route") == "from-route"
    assert key_from_url("https://app.example/API/State/ClickStream/a%2Fb", "clickstream", "from-route") == "a/b"


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
    "stored", [{"keys": ["a"]}, {"keys": "abc"}, ["a", "b"]], ids=["keys list", "keys text", "list"]
)
async def test_a_damaged_bucket_is_shown_as_stored_not_a_retryable_503(
    durable_api: tuple[df.DurableOrchestrationClient, list[tuple[str, str]]],
    monkeypatch: pytest.MonkeyPatch,
    stored: object,
) -> None:
    client, _ = durable_api
    monkeypatch.setitem(ANSWERS, ("user_activity", "~b1of8"), (200, stored))
    found = await http._read(client, _get("https://app.example/api/state/clickstream/abc", "abc"), "clickstream")
    assert found == {"damaged": ["bucket"], "state": stored}
