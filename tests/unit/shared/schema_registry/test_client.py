"""Registry clients: the Confluent REST client against the local host's registry (real HTTP), and the
Event Hubs Schema Registry up to the SDK's HTTP transport."""

from __future__ import annotations

import io
import logging
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import fastavro
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
from shared.failures import ErrorClass, StallLog
from shared.schema_registry.avro_binary import decode, parse_writer_schema
from shared.schema_registry.client import ConfluentRegistry, EventHubsRegistry, UnknownSchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from shared.schema_registry.wire import confluent_frame
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


def test_an_event_hubs_404_no_azure_service_sent_waits_instead_of_dead_lettering(
    event_hubs: tuple[EventHubsRegistry, FakeEventHubsRegistryHttp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 15: every 404 was "no such schema", so a gateway's or a proxy's page (a wrong or moved endpoint, no
    error code of the service's) dead-lettered every good record of the batch as unknown_schema, and for a minute
    after; the Confluent client waits on the same. The service's own 404 (its error code) is still unknown."""
    registry, service = event_hubs
    page = b"<html><body>404 Not Found</body></html>"
    monkeypatch.setattr(
        service, "_not_found", lambda request: service._answer(request, 404, page, {"Content-Type": "text/html"})
    )
    with pytest.raises(RegistryRefused, match="404 without the service's error code"):
        registry.schema_text("0123abcd0123abcd0123abcd0123abcd")
    monkeypatch.undo()
    with pytest.raises(UnknownSchema, match="no schema"):
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

    elsewhere, elsewhere_url = _serving(Elsewhere, host="127.0.0.2")
    location = f"{elsewhere_url}/x"
    listener, url = _answering(f"HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n".encode())
    try:
        with pytest.raises(RegistryRefused, match="302"):
            ConfluentRegistry(url, username="key", password="secret").schema_text("1")
        assert seen == []
    finally:
        listener.close()
        elsewhere.shutdown()


ADDRESS = {"type": "record", "name": "Address", "namespace": "com.acme", "fields": [{"name": "city", "type": "string"}]}
ORDER = {
    "type": "record",
    "name": "Order",
    "namespace": "com.acme",
    "fields": [{"name": "id", "type": "long"}, {"name": "address", "type": "com.acme.Address"}],
}
CITY = {"type": "record", "name": "City", "namespace": "com.acme", "fields": [{"name": "name", "type": "string"}]}
ADDRESS_OF_CITY = ADDRESS | {"fields": [{"name": "city", "type": "com.acme.City"}]}


def _confluent_with_references(answers: dict[str, dict[str, Any]]) -> tuple[HTTPServer, str]:
    """What Confluent Schema Registry answers for schemas with references (GET by id gives the text and its
    ``references``; each referenced schema is under its own subject and version); 40403 for the rest."""

    class Answers(_JsonAnswers):
        def do_GET(self) -> None:
            found = answers.get(self.path)
            self._send(200 if found else 404, found or {"error_code": 40403, "message": "Schema not found"})

    return _serving(Answers)


class _JsonAnswers(BaseHTTPRequestHandler):
    """A registry double's handler: JSON answers with their length, and no request log."""

    def _send(self, status: int, document: dict[str, Any]) -> None:
        body = orjson.dumps(document)
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


def _serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> tuple[HTTPServer, str]:
    """A real HTTP server on a free port of ``host``, answering with ``handler`` on a daemon thread, and its URL."""
    server = HTTPServer((host, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_port}"


def _reference(subject: str, version: int = 1) -> dict[str, Any]:
    return {"name": subject, "subject": subject, "version": version}


def test_a_schema_with_references_decodes_with_the_referenced_schemas_fetched_by_subject_and_version() -> None:
    """Confluent schema references (a type defined in another subject), nested: City in Address in Order."""
    answers = {
        "/schemas/ids/3": {"schema": orjson.dumps(ORDER).decode(), "references": [_reference("com.acme.Address")]},
        "/subjects/com.acme.Address/versions/1": {
            "schema": orjson.dumps(ADDRESS_OF_CITY).decode(),
            "references": [_reference("com.acme.City", -1)],
        },
        "/subjects/com.acme.City/versions/latest": {"schema": orjson.dumps(CITY).decode()},
    }
    server, url = _confluent_with_references(answers)
    try:
        inline = ORDER | {"fields": [ORDER["fields"][0], {"name": "address", "type": ADDRESS_OF_CITY | {"fields": [
            {"name": "city", "type": CITY}]}}]}  # fmt: skip
        sink = io.BytesIO()
        fastavro.schemaless_writer(sink, fastavro.parse_schema(inline), {"id": 1, "address": {"city": {"name": "A"}}})
        decoder = AvroDecoder(ConfluentRegistry(url))
        batch = decoder.decode(
            records_of([confluent_frame("3", sink.getvalue())]), [confluent_frame("3", sink.getvalue())]
        )
        assert [letter.detail for letter in batch.letters] == []
        assert batch.values == [{"id": 1, "address": {"city": {"name": "A"}}}]
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("answers", "detail"),
    [
        (
            {"/schemas/ids/3": {"schema": orjson.dumps(ORDER).decode(), "references": [_reference("gone")]}},
            "gone version 1",
        ),
        (
            {
                "/schemas/ids/3": {
                    "schema": orjson.dumps(ORDER).decode(),
                    "references": [_reference(f"s{n}") for n in range(40)],
                },
                **{f"/subjects/s{n}/versions/1": {"schema": '"string"'} for n in range(40)},
            },
            "more than 32",
        ),
    ],
    ids=["missing reference", "too many references"],
)
def test_a_schema_whose_references_cannot_be_had_dead_letters_its_records(
    answers: dict[str, dict[str, Any]], detail: str
) -> None:
    """The schema's problem, not the app's: its records are dead letters with the reason (the partition
    flows on), not a partition waiting for good (docs/datagen.md)."""
    server, url = _confluent_with_references(answers)
    try:
        value = confluent_frame("3", b"\x02\x02a")
        (letter,) = AvroDecoder(ConfluentRegistry(url)).decode(records_of([value]), [value]).letters
        assert letter.reason == "unknown_schema" and detail in letter.detail
    finally:
        server.shutdown()


@pytest.mark.parametrize("trickle_from", ["status line", "body"])
def test_a_registry_that_trickles_its_answer_is_cut_off_at_the_timeout(trickle_from: str) -> None:
    """The timeout bounds the whole call, not each socket read: a registry (or a proxy) sending a byte now and
    then would otherwise hold the invocation as long as it likes."""
    body = b'{"schema": "\\"string\\""}'
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    answer = head + body
    at_once = 0 if trickle_from == "status line" else len(head)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(answer[:at_once])
            for index in range(at_once, len(answer)):  # a byte every 0.1 s: each read well within the timeout
                if stop.wait(0.1):
                    return
                try:
                    connection.sendall(answer[index : index + 1])
                except OSError:
                    return

    threading.Thread(target=serve, daemon=True).start()
    try:
        # Not cut off, the call would read the whole answer (in 2.5 s or more) and succeed, without the message.
        with pytest.raises(RegistryUnavailable, match="within its timeout"):
            ConfluentRegistry(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5).schema_text("1")
    finally:
        stop.set()
        listener.close()


def test_the_event_hubs_client_the_app_builds_has_the_lakes_bounded_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-core's defaults (300 s read timeout, 3 read retries, status retries sleeping for any Retry-After)
    let one call block about 20 minutes, past maxPollIntervalMs. Built as the app builds it (client=None)."""
    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: FakeCredential())
    registry = EventHubsRegistry("evhns-test.servicebus.windows.net", "streamingpoc")
    generated_client: Any = registry._client._generated_client
    retry, transport = generated_client._config.retry_policy, generated_client._client._pipeline._transport
    config = transport.connection_config
    assert (config.timeout, config.read_timeout) == (5, 15)
    assert (retry.total_retries, retry.status_retries) == (2, 0)
    backoffs = sum(min(retry.backoff_max, retry.backoff_factor * 2**n) for n in range(1, retry.total_retries))
    worst = (retry.total_retries + 1) * (config.timeout + config.read_timeout) + backoffs
    assert worst == registry.max_call_seconds == 62


class _InvalidRequestService(FakeEventHubsRegistryHttp):
    """As the service answers a GET of an id that is not one of its ids: 400 InvalidRequest (the SDK's own
    recording of ``get_schema("fakeschemaid")``), not 404. ``invalid`` ids answer so whatever their form."""

    invalid: tuple[str, ...] = ()

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = str(request.path_url).split("?")[0]
        if request.method == "GET" and path.startswith("/$schemaGroups/$schemas/"):
            schema_id = path.rsplit("/", 1)[1]
            if schema_id in self.invalid or len(schema_id) != 32:
                self.requests.append((str(request.method), str(request.url)))
                body = (
                    b'{"error": {"code": "InvalidRequest", "message": "SubCode=40000, UnknownType:The request is'
                    b' invalid. [MGResponseHttpError=BadRequest]."}}'
                )
                return self._answer(request, 400, body, {"x-ms-error-code": "InvalidRequest"})
        return super().send(request, **kwargs)


@pytest.mark.parametrize(
    ("junk_id", "reason"),
    [
        ("fakeschemaid", "not_avro"),
        ("x", "not_avro"),
        ("0" * 64, "not_avro"),
        ("0123abcd-0123-abcd-0123-abcd0123abcd", "not_avro"),
        ("ffffffffffffffffffffffffffffffff", "unknown_schema"),  # of the form, but the service refuses it
    ],
)
def test_a_junk_event_hubs_schema_id_is_a_dead_letter_not_a_stalled_partition(
    event_hubs: tuple[EventHubsRegistry, FakeEventHubsRegistryHttp], junk_id: str, reason: str
) -> None:
    """One record whose content-type names an id the service answers 400 InvalidRequest for was RegistryRefused:
    its partition waited for good. An id not of the service's form is not_avro without asking; one of the form
    that the service refuses is an unknown schema."""
    registry, service = event_hubs
    service.__class__ = _InvalidRequestService
    setattr(service, "invalid", ("ffffffffffffffffffffffffffffffff",))  # noqa: B010 (an instance attribute)
    source = avro_source()
    encoder = AvroEncoder(source, registry, "orders")
    good = [encoder.encode(key, text) for key, text in generated(source, 2)]
    values: list[bytes | None] = [good[0].value, good[1].value, good[1].value]
    content_types: list[str | None] = [good[0].headers[0][1], f"avro/binary+{junk_id}", good[1].headers[0][1]]
    decoder = AvroDecoder(registry)
    batch = process_batch(
        source, records_of(values, content_types=content_types), max_record_bytes=1 << 20, decoder=decoder
    )
    assert [row["_offset"] for row in batch.rows()] == [0, 2]
    assert [(letter.record.offset, str(letter.reason)) for letter in batch.dead_letters] == [(1, reason)]
    asked = [url.rsplit("/", 1)[1] for method, url in service.requests if method == "GET" and "$schemas/" in url]
    assert junk_id not in asked or reason == "unknown_schema"


def test_event_hubs_400_for_a_schema_id_is_unknown_only_when_the_service_names_the_id_invalid(
    event_hubs: tuple[EventHubsRegistry, FakeEventHubsRegistryHttp],
) -> None:
    """400 InvalidRequest for a GET by id is the id's problem; another 400 (an API the app calls wrongly) is not."""
    registry, service = event_hubs
    service.status = 400  # the fake's forced answer has error code "Forced"
    with pytest.raises(RegistryRefused):
        registry.schema_text("0123abcd0123abcd0123abcd0123abcd")
    service.status = None
    service.__class__ = _InvalidRequestService
    setattr(service, "invalid", ("0123abcd0123abcd0123abcd0123abcd",))  # noqa: B010 (an instance attribute)
    with pytest.raises(UnknownSchema, match="InvalidRequest"):
        registry.schema_text("0123abcd0123abcd0123abcd0123abcd")
    asked = len(service.requests)
    with pytest.raises(UnknownSchema, match="32 hex digits"):
        registry.schema_text("fakeschemaid")
    assert len(service.requests) == asked, "an id not of the service's form is not asked about"


def _confluent_like(schema_text: str) -> tuple[HTTPServer, str]:
    """As Confluent Schema Registry answers: the id is a Java Integer path parameter, so one past 2**31-1 gets
    JAX-RS's bare 404 ({"error_code": 404}), not the registry's own 40403 (which the local registry gives)."""

    class Answers(_JsonAnswers):
        def do_POST(self) -> None:  # register: id 1
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(200, {"id": 1})

        def do_GET(self) -> None:
            text = self.path.rsplit("/", 1)[1]
            if not (self.path.startswith("/schemas/ids/") and -(2**31) <= int(text) < 2**31):
                self._send(404, {"error_code": 404, "message": "HTTP 404 Not Found"})
            elif text == "1":
                self._send(200, {"schema": schema_text})
            else:
                self._send(404, {"error_code": 40403, "message": "Schema not found"})

    return _serving(Answers)


@pytest.mark.parametrize("junk_id", [2**31, 2**32 - 1])
def test_a_confluent_id_past_a_java_int_is_a_dead_letter_not_a_stalled_partition(junk_id: int) -> None:
    source = avro_source()
    server, url = _confluent_like(orjson.dumps(source.avro_schema).decode())
    try:
        client = ConfluentRegistry(url)
        encoder = AvroEncoder(source, client, "orders")
        good = [encoder.encode(key, text).value for key, text in generated(source, 2)]
        junk = struct.pack(">BI", 0, junk_id) + good[0][5:]
        batch = process_batch(
            source, records_of([good[0], junk, good[1]]), max_record_bytes=1 << 20, decoder=AvroDecoder(client)
        )
        assert [row["_offset"] for row in batch.rows()] == [0, 2]
        assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(1, "not_avro")]
        with pytest.raises(UnknownSchema, match="not a Confluent schema id"):  # never asked, had it come this far
            client.schema(str(junk_id))
    finally:
        server.shutdown()


SECRET = "S3CRET-api-secret"


@pytest.mark.parametrize(
    "url",
    [
        f"http://KEY:{SECRET}@127.0.0.1:9/",
        f"https://KEY:{SECRET}@psrc-abc.westeurope.azure.confluent.cloud",
        # a secret holding / ? or # ends urlsplit's netloc before the @ (review 2026-12-07: taken, and its prefix
        # shown in every "nonnumeric port" error)
        f"https://KEY:p4/{SECRET}+Q@psrc-abc.westeurope.azure.confluent.cloud",
        f"https://KEY:a?{SECRET}#b@psrc-abc.westeurope.azure.confluent.cloud",
    ],
)
def test_credentials_in_the_registry_url_are_refused_and_never_reach_a_log(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Confluent's basic.auth.credentials.source=URL never worked here (urllib took KEY for the host): it passed
    for an outage, retried for good, and its message with the secret went to the stall log and the dashboard.
    Refused up front (infrastructure: waits loudly), the URL redacted."""
    with pytest.raises(RegistryRefused) as raised:
        ConfluentRegistry(url)
    assert SECRET not in str(raised.value) and "***@" in str(raised.value)
    with caplog.at_level(logging.WARNING):
        error_class = StallLog().failed("orders", {("orders", 0): (0, 9)}, raised.value)
    assert SECRET not in caplog.text and "SCHEMA_REGISTRY_USERNAME" in caplog.text
    assert error_class is ErrorClass.INFRASTRUCTURE
    with pytest.raises(RegistryRefused) as raised:
        EventHubsRegistry(f"https://KEY:{SECRET}@evhns-test.servicebus.windows.net", "g", client=object())
    assert SECRET not in str(raised.value)
    with pytest.raises(RegistryRefused) as raised:
        ConfluentRegistry(f"ftp://KEY:{SECRET}@host/?token={SECRET}")
    assert SECRET not in str(raised.value)


def test_a_huge_registry_answer_is_refused_after_a_bounded_read() -> None:
    """No registry's schema is megabytes (one Kafka record of its topic): a broken registry or proxy answering
    hundreds of MiB must not be read whole into the worker's memory within the deadline, then parsed."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    declared, sent = 256 * 2**20, [0]

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
            connection.sendall(head.encode())
            chunk = b" " * 2**20
            try:
                while sent[0] < declared:
                    connection.sendall(chunk)
                    sent[0] += len(chunk)
            except OSError:
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with pytest.raises(RegistryRefused, match="more than 8 MiB"):
            ConfluentRegistry(f"http://127.0.0.1:{listener.getsockname()[1]}").schema_text("1")
    finally:
        listener.close()
        thread.join(10)
    assert not thread.is_alive()
    assert sent[0] < 64 * 2**20, f"the client took {sent[0] >> 20} MiB of a {declared >> 20} MiB answer"


def _confluent_cloud_rbac(
    schema_text: str, forbidden: dict[str, Any], served: int = 1, role: threading.Event | None = None
) -> tuple[HTTPServer, str]:
    """As Confluent Cloud with role-based access answers an app's key: schema ``served`` (the app's own subject) is
    served, every other id is refused with ``forbidden`` (403), as for a schema registered only under another team's
    subjects. Registering answers id ``served``. Once ``role`` is cleared, the key may read nothing."""

    class Answers(_JsonAnswers):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(200, {"id": served})

        def do_GET(self) -> None:
            if self.path == f"/schemas/ids/{served}" and (role is None or role.is_set()):
                self._send(200, {"schema": schema_text})
            else:
                self._send(403, forbidden)

    return _serving(Answers)


DENIED_READ = {"error_code": 40301, "message": "User is denied operation Read on Subject: payments-value"}


def test_a_schema_id_the_app_may_not_read_is_a_dead_letter_once_the_registry_has_served_it_a_schema() -> None:
    """A junk value naming another team's schema id (403, error_code 40301) was RegistryRefused: the batch raised
    on every redelivery and the partition stopped for good, though the registry served every other id. A client
    whose credentials have been served a schema takes it as the record's: an unknown_schema dead letter, redrivable."""
    source = avro_source()
    server, url = _confluent_cloud_rbac(orjson.dumps(source.avro_schema).decode(), DENIED_READ)
    try:
        client = ConfluentRegistry(url)
        good = [AvroEncoder(source, client, "orders").encode(key, text).value for key, text in generated(source, 3)]
        junk = confluent_frame("777", b"\x02\x04")
        values: list[bytes | None] = [good[0], junk, good[1], good[2]]
        decoder = AvroDecoder(client)
        for _redelivery in range(3):
            batch = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=decoder)
            assert [row["_offset"] for row in batch.rows()] == [0, 2, 3]
            (letter,) = batch.dead_letters
            assert (letter.record.offset, letter.reason) == (1, "unknown_schema")
            assert "schema 777" in letter.detail and "403" in letter.detail and "payments-value" in letter.detail
    finally:
        server.shutdown()


def test_a_forbidden_id_asked_before_the_batchs_good_one_on_a_fresh_worker_is_a_dead_letter_too() -> None:
    """A worker's first batch: ids are fetched in order, and "10" comes before "5". Refused before anything was
    served, the forbidden id is asked again once the good one was, so the batch does not wait for good."""
    source = avro_source()
    server, url = _confluent_cloud_rbac(orjson.dumps(source.avro_schema).decode(), DENIED_READ, served=5)
    try:
        client = ConfluentRegistry(url)
        (good,) = [AvroEncoder(source, client, "orders").encode(key, text).value for key, text in generated(source, 1)]
        values: list[bytes | None] = [confluent_frame("10", b"\x02\x04"), good]
        batch = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=AvroDecoder(client))
        assert [row["_offset"] for row in batch.rows()] == [1]
        assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(0, "unknown_schema")]
    finally:
        server.shutdown()


def test_a_key_that_lost_its_read_role_waits_instead_of_dead_lettering_new_ids() -> None:
    """Served schema 1, then the key's role is removed: every id now answers 40301. Schema 1, asked again, is
    refused too, so the refusal is the key's, not one id's: the batch waits for the role instead of
    dead-lettering every record naming an id not yet cached."""
    role = threading.Event()
    role.set()
    server, url = _confluent_cloud_rbac('"string"', DENIED_READ, role=role)
    try:
        client = ConfluentRegistry(url)
        assert client.schema("1").text == '"string"'
        with pytest.raises(UnknownSchema, match="schema 777"):
            client.schema("777")  # the key still reads schema 1: this id is another team's
        role.clear()
        with pytest.raises(RegistryRefused, match="HTTP 403"):
            client.schema("778")
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("forbidden", "before"),
    [
        (DENIED_READ, "nothing"),  # as far as the app knows, its key may read no subject at all
        (DENIED_READ, "register"),  # a schema registered is none read: the key may write without reading
        ({"error_code": 403, "message": "Forbidden"}, "a schema"),  # not Confluent's 40301: a proxy, a firewall
        ({}, "a schema"),
    ],
    ids=["40301 before anything", "40301 after a registration", "403 without 40301", "403 without a body"],
)
def test_a_forbidden_schema_id_waits_unless_the_key_was_served_a_schema_and_denied_this_one(
    forbidden: dict[str, Any], before: str
) -> None:
    """A key that may read nothing (a role or credential problem for every subject) must not dead-letter every
    record: without a schema served to this client, or without Confluent's 40301, a 403 waits, loudly."""
    server, url = _confluent_cloud_rbac('"string"', forbidden)
    try:
        client = ConfluentRegistry(url)
        if before == "register":
            assert client.register("orders-value", '"string"') == "1"
        elif before == "a schema":
            assert client.schema("1").text == '"string"'
        with pytest.raises(RegistryRefused, match="HTTP 403"):
            client.schema("777")
    finally:
        server.shutdown()


def test_a_registry_answering_json_nested_past_the_parser_is_refused_in_one_line() -> None:
    """Review 15: 200 KB of nested arrays made ``json.loads`` raise RecursionError, which left the client as itself,
    a traceback naming no registry; it is an answer no registry gives: refused, naming the registry."""
    body = b"[" * 100_000 + b"]" * 100_000
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nContent-Type: application/json\r\n\r\n".encode()
    listener, url = _answering(head + body)
    try:
        with pytest.raises(RegistryRefused, match=r"127\.0\.0\.1"):
            ConfluentRegistry(url).schema_text("1")
    finally:
        listener.close()


@pytest.mark.parametrize("url", ["http://registry.example.com:8081", "http://schema-registry:8081/prefix"])
def test_a_registry_over_plain_http_off_this_machine_is_refused_with_or_without_credentials(url: str) -> None:
    """Review 15: without SCHEMA_REGISTRY_USERNAME any http URL was taken: the schemas records are decoded with
    crossed the network in clear, for anyone in between to swap."""
    with pytest.raises(RegistryRefused, match="must be https://"):
        ConfluentRegistry(url)
    assert ConfluentRegistry("http://127.0.0.1:8081").url == "http://127.0.0.1:8081"


def test_a_loopback_registry_over_http_is_never_reached_through_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Review 2026-12-07: urllib's default opener sent a loopback http:// registry's request, Basic credentials
    included, to the proxy ``http_proxy`` named, in clear; the proxy could also answer any schema it liked."""
    proxied: list[str] = []

    class Proxy(_JsonAnswers):
        def do_GET(self) -> None:
            proxied.append(self.path)
            self._send(200, {"schema": '"string"'})

    class Registry(_JsonAnswers):
        def do_GET(self) -> None:
            self._send(200, {"schema": '"long"'})

    proxy, proxy_url = _serving(Proxy)
    registry, registry_url = _serving(Registry)
    try:
        for name in ("http_proxy", "HTTP_PROXY"):
            monkeypatch.setenv(name, proxy_url)
        for name in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        client = ConfluentRegistry(registry_url, username="KEY", password=SECRET)
        assert client.schema_text("1") == ("AVRO", '"long"')
        assert proxied == []
    finally:
        proxy.shutdown()
        registry.shutdown()


@pytest.mark.parametrize("answer", [{"id": True}, {"id": 2**31}, {"id": 0}, {"id": "7"}, {}])
def test_a_registration_answered_without_a_usable_id_is_refused(answer: dict[str, Any]) -> None:
    """Review 2026-12-07: ``{"id": true}`` registered as schema id "True", and an id past 2**31-1 failed later
    in the generator's framing with a bare struct.error."""

    class Registry(_JsonAnswers):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._send(200, answer)

    server, url = _serving(Registry)
    try:
        with pytest.raises(RegistryRefused, match="no id from 1 to 2"):
            ConfluentRegistry(url).register("orders-value", '"string"')
    finally:
        server.shutdown()
