"""Registry clients: the Confluent REST client against the local host's registry (real HTTP), and the
Event Hubs Schema Registry up to the SDK's HTTP transport."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson
import pytest
import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.schemaregistry import SchemaRegistryClient

from devhost.services.processes import free_port
from shared.batch import process_batch
from shared.errors import RegistryRefused, RegistryUnavailable
from shared.schema_registry.avro_binary import decode, parse_writer_schema
from shared.schema_registry.client import ConfluentRegistry, EventHubsRegistry, UnknownSchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from tests.unit.shared.schema_registry.conftest import avro_source, generated, records_of


def test_an_unreachable_registry_waits_and_a_wrong_url_is_refused(registry: str) -> None:
    with pytest.raises(RegistryUnavailable):
        ConfluentRegistry(f"http://127.0.0.1:{free_port()}").schema_text("1")
    with pytest.raises(RegistryRefused, match="HTTP 404"):  # not the registry's own 40403: a wrong URL
        ConfluentRegistry(registry + "/not-the-api").schema_text("1")
    with pytest.raises(RegistryRefused, match="https"):
        ConfluentRegistry("http://registry.example.com", username="key", password="secret")


class FakeEventHubsRegistryHttp(requests.adapters.BaseAdapter):
    """Stands in for the Event Hubs Schema Registry service (it cannot run here): answers the SDK's
    HTTP requests from a dict of schemas; ``status`` forces an error answer."""

    def __init__(self) -> None:
        super().__init__()
        self.schemas: dict[str, tuple[str, str, str]] = {}  # id -> (group, name, definition)
        self.status: int | None = None
        self.requests: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        self.requests.append((str(request.method), str(request.url)))
        path = str(request.path_url).split("?")[0]
        if self.status is not None:
            return self._answer(request, self.status, b'{"error": {"code": "Forced", "message": "forced"}}')
        if request.method == "GET" and path.startswith("/$schemaGroups/$schemas/"):
            found = self.schemas.get(path.rsplit("/", 1)[1])
            return self._schema(request, found) if found else self._not_found(request)
        group, name = path.split("/")[2], path.split("/")[4].split(":")[0]
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        matches = [i for i, (g, n, d) in self.schemas.items() if (g, n, d) == (group, name, body)]
        if path.endswith(":get-id"):
            return self._properties(request, matches[0], group, name) if matches else self._not_found(request)
        schema_id = matches[0] if matches else f"{len(self.schemas) + 1:032x}"
        self.schemas[schema_id] = (group, name, body)
        return self._properties(request, schema_id, group, name)

    def _schema(self, request: requests.PreparedRequest, found: tuple[str, str, str]) -> requests.Response:
        group, name, definition = found
        schema_id = next(i for i, value in self.schemas.items() if value == found)
        headers = self._headers(schema_id, group, name) | {"Content-Type": "application/json; serialization=Avro"}
        return self._answer(request, 200, definition.encode(), headers)

    def _properties(
        self, request: requests.PreparedRequest, schema_id: str, group: str, name: str
    ) -> requests.Response:
        return self._answer(request, 204, b"", self._headers(schema_id, group, name))

    def _not_found(self, request: requests.PreparedRequest) -> requests.Response:
        return self._answer(request, 404, b'{"error": {"code": "ItemNotFound", "message": "not found"}}')

    @staticmethod
    def _headers(schema_id: str, group: str, name: str) -> dict[str, str]:
        return {"Schema-Id": schema_id, "Schema-Group-Name": group, "Schema-Name": name, "Schema-Version": "1"}

    @staticmethod
    def _answer(
        request: requests.PreparedRequest, status: int, body: bytes, headers: dict[str, str] | None = None
    ) -> requests.Response:
        all_headers = {"Content-Type": "application/json", "Content-Length": str(len(body))} | (headers or {})
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(body), headers=all_headers, status=status, preload_content=False, decode_content=False
        )
        return requests.adapters.HTTPAdapter().build_response(request, raw)

    def close(self) -> None:
        return None


class FakeCredential:
    """A token credential that never asks Entra ID (which cannot be reached here)."""

    def get_token(self, *_scopes: str, **_kwargs: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


@pytest.fixture
def event_hubs() -> tuple[EventHubsRegistry, FakeEventHubsRegistryHttp]:
    service = FakeEventHubsRegistryHttp()
    session = requests.Session()
    session.mount("https://", service)
    sdk = SchemaRegistryClient(
        "evhns-test.servicebus.windows.net", FakeCredential(), transport=RequestsTransport(session=session)
    )
    return EventHubsRegistry("https://evhns-test.servicebus.windows.net", "streamingpoc", client=sdk), service


def test_event_hubs_avro_travels_with_its_id_in_the_content_type_header(
    event_hubs: tuple[EventHubsRegistry, FakeEventHubsRegistryHttp],
) -> None:
    registry, service = event_hubs
    source = avro_source()
    encoder = AvroEncoder(source, registry, "orders")
    messages = [encoder.encode(key, text) for key, text in generated(source, 3)]
    (schema_id,) = service.schemas
    assert service.schemas[schema_id][:2] == ("streamingpoc", "ksql.orders")  # the record's full name
    assert all(m.headers == (("content-type", f"avro/binary+{schema_id}"),) for m in messages)
    parsed = parse_writer_schema(encoder.schema_text)
    assert [decode(parsed, m.value) for m in messages] == [orjson.loads(t) for _, t in generated(source, 3)]
    content_types: list[str | None] = [m.headers[0][1] for m in messages] + [None]
    values: list[bytes | None] = [m.value for m in messages] + [messages[0].value]
    records = records_of(values, content_types=content_types)
    batch = process_batch(source, records, max_record_bytes=1 << 20, decoder=AvroDecoder(registry))
    assert [row["_offset"] for row in batch.rows()] == [0, 1, 2]
    assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(3, "not_avro")]
    assert AvroEncoder(source, registry, "orders").schema_id() == schema_id, "found again, not re-registered"
    assert all(url.startswith("https://evhns-test.servicebus.windows.net/$schemaGroups") for _, url in service.requests)


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, UnknownSchema), (403, RegistryRefused), (401, RegistryRefused), (503, RegistryUnavailable)],
)
def test_event_hubs_answers_map_to_unknown_refused_or_waiting(
    event_hubs: tuple[EventHubsRegistry, FakeEventHubsRegistryHttp], status: int, error: type[Exception]
) -> None:
    registry, service = event_hubs
    service.status = status
    with pytest.raises(error):
        registry.schema_text("0123abcd0123abcd0123abcd0123abcd")


def _answering(answer: bytes) -> tuple[socket.socket, str]:
    """A server that answers every connection with ``answer`` as it is, HTTP or not."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                connection.recv(65536)
                connection.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


@pytest.mark.parametrize(
    "answer",
    [
        b"\x00\x01garbage that is not HTTP\r\n\r\n",
        b'HTTP/1.1 200 OK\r\nContent-Length: 500\r\nContent-Type: application/json\r\n\r\n{"schema": "{',
    ],
    ids=["not HTTP", "cut off"],
)
def test_a_registry_that_breaks_off_is_unavailable(answer: bytes) -> None:
    """A transient failure (the batch waits and retries), not an unclassified one."""
    listener, url = _answering(answer)
    try:
        with pytest.raises(RegistryUnavailable):
            ConfluentRegistry(url).schema_text("1")
    finally:
        listener.close()


def test_a_redirect_is_refused_and_the_credentials_go_nowhere_else() -> None:
    seen: list[str | None] = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    elsewhere = HTTPServer(("127.0.0.2", 0), Elsewhere)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    location = f"http://127.0.0.2:{elsewhere.server_port}/x"
    listener, url = _answering(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
    try:
        with pytest.raises(RegistryRefused, match="302"):
            ConfluentRegistry(url, username="key", password="secret").schema_text("1")
        assert seen == []
    finally:
        listener.close()
        elsewhere.shutdown()
