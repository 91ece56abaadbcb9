"""A read whose connection breaks off mid-body, on Azurite: an outage, never "the lake refuses this for good".

Faults are injected by a pipeline policy placed after the SDK's retry policy (``_additional_pipeline_policies``): each
try really reaches Azurite; the policy only cuts the body the client reads. The blob downloader retries a body that
broke off (3 tries), then raises a bare ``HttpResponseError`` with no response (no status), which ``lake_errors``
took for a permanent refusal (``LakeError``) until a review proved it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.policies import HTTPPolicy

from devhost.services.azurite import Azurite
from shared.errors import LakeUnavailable, StreamingPocError
from shared.failures import ErrorClass, classify
from shared.invocation import handle_batch
from shared.lake.blob import BlobLake
from shared.landing.raw_rows import raw_rows
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import context_for, records_for

CLICKS = get_source("clickstream")


def _path(request: Any) -> str:
    segments = urlsplit(request.url).path.lstrip("/").split("/", 2)  # account, container, lake path
    return segments[2] if len(segments) == 3 else ""


class _BrokenStream:
    """A response body whose connection drops before its first byte (what requests reports as a reset)."""

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        raise ServiceResponseError("injected: connection reset by peer while reading the body")


class BreakBodies(HTTPPolicy):  # type: ignore[misc]
    """Every GET of a path under ``prefix`` gets its headers, then the connection drops mid-body."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.broken = 0

    def send(self, request: Any) -> Any:
        response = self.next.send(request)
        http = request.http_request
        if http.method == "GET" and _path(http).startswith(self.prefix):
            self.broken += 1
            response.http_response.stream_download = lambda *args, **kwargs: _BrokenStream()
        return response


def _blob_lake(azurite: Azurite, container: str, **options: Any) -> BlobLake:
    settings = load_settings({"LAKE_CONNECTION_STRING": azurite.connection_string, "LAKE_FILE_SYSTEM": container})
    return BlobLake.from_settings(settings, **options)


@pytest.mark.parametrize("read", ["read", "read_versioned"])
def test_a_connection_dropped_mid_body_on_every_read_try_is_transient(azurite: Azurite, read: str) -> None:
    container = f"body-{uuid.uuid4().hex[:8]}"
    _blob_lake(azurite, container, retry_total=0).create("raw/x/file.parquet", b"data" * 100)
    broken = BreakBodies("raw/x/file.parquet")
    lake = _blob_lake(azurite, container, _additional_pipeline_policies=[broken], retry_total=0)
    with pytest.raises(StreamingPocError) as raised:
        getattr(lake, read)("raw/x/file.parquet")
    assert broken.broken >= 2, "the fault was not injected"
    assert isinstance(raised.value, LakeUnavailable), f"{type(raised.value).__name__}: {raised.value}"
    assert classify(raised.value) is ErrorClass.TRANSIENT


def test_a_raw_file_read_that_broke_off_is_an_outage_not_rows_missing_from_raw(azurite: Azurite) -> None:
    """``raw_rows`` (the live path: records a delivery rejects that an earlier one landed as rows) lets an outage
    (``LakeUnavailable``) propagate. Taken for ``LakeError``, the read was ``UnreadableLakeFile``: rows raw/ holds
    reported unreadable and not found, so state did not count them, decided for good on a network fault."""
    container = f"rows-{uuid.uuid4().hex[:8]}"
    writer = _blob_lake(azurite, container, retry_total=0)
    records = records_for(CLICKS, 5)
    handle_batch(context_for(CLICKS, writer), records)
    wanted = [(record.topic, record.partition, 0, record.offset) for record in records]
    assert set(raw_rows(writer, CLICKS.name, wanted)) == set(wanted)  # all in raw/

    broken = BreakBodies("raw/")
    lake = _blob_lake(azurite, container, _additional_pipeline_policies=[broken], retry_total=0)
    unreadable: dict[Any, str] = {}
    with pytest.raises(LakeUnavailable):
        found = raw_rows(lake, CLICKS.name, wanted, unreadable=unreadable)
        pytest.fail(f"returned {len(found)} rows; {len(unreadable)} taken as unreadable: {set(unreadable.values())}")
    assert broken.broken
