"""Every request the Azure stores send names the service's own timeout (``timeout=<n>``), n at most the client's
per-try read timeout: on the real SDK, against Azurite (Blob) and the fake DFS server (ADLS).

Without it the service works on a try for 30 s by default, and a write for up to 10 minutes per MiB, long after
the client gave up: a dead holder's create could land after the partition's next owner removed that landing and
landed its records again under another cut. Here the whole of that story runs: instance A begins a landing, writes
its raw file and dies before its dead-letter file; B, once A's lease ran out, gets the batch cut shorter, removes
A's landing (deletes), lands both cuts, and reads and lists the lake. Each request is captured as it leaves the
SDK's pipeline (``raw_request_hook``, per try), and on ADLS also as the server received it.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import ServiceRequestError

from devhost.services.azurite import Azurite
from shared.errors import LakeUnavailable
from shared.formats import decode
from shared.invocation import handle_batch
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake
from shared.lake.connection import REQUEST_LIMITS
from shared.landing.guard import guard_for
from shared.landing.partition import DEFAULT_LEASE_SECONDS
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import context_for, records_for
from tests.lake.conftest import NO_RETRIES
from tests.lake.fake_dfs_server import FakeDataLake

CLICKS = get_source("clickstream")
POISON = (3, 15)  # offsets whose values are not JSON: dead letters


class Sent:
    """The requests one lake client sent, as (method, lake path, query, headers); optionally one that fails."""

    def __init__(self, fail_when: Callable[[str, str], bool] = lambda method, path: False) -> None:
        self.requests: list[tuple[str, str, dict[str, list[str]], dict[str, str]]] = []
        self.fail_when = fail_when

    def __call__(self, pipeline_request: Any) -> None:
        request = pipeline_request.http_request
        parts = urlsplit(request.url)
        segments = parts.path.lstrip("/").split("/", 2)  # account, container, then the lake path
        path = segments[2] if len(segments) == 3 else ""
        self.requests.append((request.method, path, parse_qs(parts.query), dict(request.headers)))
        if self.fail_when(request.method, path):
            raise ServiceRequestError("injected: the instance dies before this request goes out")


def _records() -> list[KafkaRecord]:
    return [
        dataclasses.replace(record, value=b"{not json") if record.offset in POISON else record
        for record in records_for(CLICKS, 20)
    ]


def _open(kind: str, backend: str, container: str, hook: Sent) -> BlobLake | AdlsLake:
    settings = load_settings({"LAKE_CONNECTION_STRING": backend, "LAKE_FILE_SYSTEM": container})
    store = BlobLake if kind == "blob" else AdlsLake
    return store.from_settings(settings, raw_request_hook=hook, **NO_RETRIES)


@pytest.fixture(params=["blob", "adls"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str, FakeDataLake | None]:
    if request.param == "blob":
        azurite: Azurite = request.getfixturevalue("azurite")
        return "blob", azurite.connection_string, None
    service, connection_string = request.getfixturevalue("fake_dfs")
    return "adls", connection_string, service


def _timeouts(queries: list[dict[str, list[str]]]) -> Counter[str]:
    return Counter(",".join(query.get("timeout", ["<none>"])) for query in queries)


def test_every_request_of_a_landing_names_a_server_timeout_within_the_read_timeout(
    backend: tuple[str, str, FakeDataLake | None],
) -> None:
    kind, connection, service = backend
    container = f"lake-{uuid.uuid4().hex[:8]}"
    clock = [1_000_000.0]
    records = _records()

    dies = Sent(fail_when=lambda method, path: method == "PUT" and path.startswith("deadletter/"))
    lake_a = _open(kind, connection, container, dies)
    guard_for(lake_a, DEFAULT_LEASE_SECONDS).clock = lambda: clock[0]
    with pytest.raises(LakeUnavailable):
        handle_batch(context_for(CLICKS, lake_a), records)  # ledger written, raw file created, then A is gone

    clock[0] += DEFAULT_LEASE_SECONDS + 1  # A's lease ran out
    sent = Sent()
    lake_b = _open(kind, connection, container, sent)
    guard_for(lake_b, DEFAULT_LEASE_SECONDS).clock = lambda: clock[0]
    handle_batch(context_for(CLICKS, lake_b), records[:10])  # cut shorter: A's landing is removed, 0-9 land
    handle_batch(context_for(CLICKS, lake_b), records)  # redelivered whole: 10-19 land
    raw = [row["_offset"] for path in lake_b.list_paths("raw") for row in decode("parquet", lake_b.read(path))]
    letters = [row["_offset"] for path in lake_b.list_paths("deadletter") for row in decode("jsonl", lake_b.read(path))]

    # The story ran: A died at its dead-letter file, every offset landed once, and B's requests include each kind a
    # landing sends.
    assert [(method, path.split("/", 1)[0]) for method, path, _, _ in dies.requests[-2:]] == [
        ("PUT", "raw"),
        ("PUT", "deadletter"),
    ]
    assert sorted(raw) == [offset for offset in range(20) if offset not in POISON]
    assert sorted(letters) == list(POISON)
    kinds = {
        (method, path.split("/", 1)[0], "If-Match" in headers, headers.get("If-None-Match"))
        for method, path, _query, headers in sent.requests
    }
    assert ("PUT", "_landing", True, None) in kinds, "no conditional ledger write"
    assert ("PUT", "raw", False, "*") in kinds, "no data file created only if absent"
    assert ("PUT", "deadletter", False, "*") in kinds, "no dead-letter file created"
    assert any(method == "DELETE" and path.startswith("raw/") for method, path, _, _ in sent.requests), "no removal"
    assert {method for method, _path, _query, _headers in sent.requests} >= {"GET", "HEAD", "PUT", "DELETE"}
    listings = [query for _m, _p, query, _h in sent.requests if query.get("comp") == ["list"] or "recursive" in query]
    assert listings, "no listing"

    # Every request of both instances, the dying one's last included, names the store's server timeout.
    server_timeout = lake_b.server_timeout
    assert 0 < server_timeout <= REQUEST_LIMITS["read_timeout"]
    for client in (lake_b.container, getattr(lake_b, "file_system", lake_b.container)):
        assert server_timeout <= client._pipeline._transport.connection_config.read_timeout
    captured = [query for _m, _p, query, _h in dies.requests + sent.requests]
    assert _timeouts(captured) == Counter({str(server_timeout): len(captured)}), [
        (method, path, query) for method, path, query, _ in dies.requests + sent.requests if "timeout" not in query
    ]
    if service is not None:  # and as the fake ADLS account received them
        received = [parse_qs(query) for _method, _path, query in service.requests]
        assert received and _timeouts(received) == Counter({str(server_timeout): len(received)})


def test_a_write_no_lease_bounds_names_a_server_timeout_that_grows_with_its_body(
    backend: tuple[str, str, FakeDataLake | None],
) -> None:
    """A curated data file may be a GiB (COMPACTION_TARGET_FILE_MB): at a landing's 10 s it would need ~860 Mbit/s,
    and a compaction that cannot upload its file fails every run. write_atomic names 10 s plus 2 s a MiB; a
    landing's create keeps 10 s, which its lease counts."""
    kind, connection_string, _ = backend
    sent = Sent()
    lake = _open(kind, connection_string, f"t{uuid.uuid4().hex[:12]}", sent)
    lake.write_atomic("curated/clickstream/part-0.parquet", b"x" * (5 * (1 << 20) + 1))
    lake.create("raw/clickstream/a.parquet", b"x" * (5 * (1 << 20) + 1))
    puts = [(path, query.get("timeout")) for method, path, query, _ in sent.requests if method == "PUT" and path]
    server = REQUEST_LIMITS["server_timeout"]
    assert puts == [
        ("curated/clickstream/part-0.parquet", [str(server + 2 * 6)]),
        ("raw/clickstream/a.parquet", [str(server)]),
    ]
