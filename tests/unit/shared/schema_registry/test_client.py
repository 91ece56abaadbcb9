"""Avro with a schema registry: wire formats, the codec, the clients (the local host's registry over
real HTTP; the Event Hubs SDK up to its HTTP transport) and the decoder's dead letters and waits."""

from __future__ import annotations

import io
import json
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import RequestsTransport
from azure.schemaregistry import SchemaRegistryClient
from faker import Faker

from devhost.registry.server import serve_registry
from devhost.services.processes import free_port
from shared.batch import process_batch
from shared.datagen.config import QUICKSTARTS, parse_config, quickstart_config
from shared.datagen.source import config_source
from shared.errors import RegistryRefused, RegistryUnavailable
from shared.records import KafkaRecord
from shared.schema_registry.avro_binary import decode, encode, parse_writer_schema
from shared.schema_registry.client import ConfluentRegistry, EventHubsRegistry, UnknownSchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from shared.schema_registry.wire import NotAvro, confluent_frame, confluent_split, schema_id_of_content_type
from shared.source_model import Source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS

AVRO_CONFIG = {
    "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": "http://registry.invalid:8081",
}


def avro_source(quickstart: str = "orders", topic: str = "orders") -> Source:
    document = {"name": f"datagen-{topic}", "config": AVRO_CONFIG | {"kafka.topic": topic, "quickstart": quickstart}}
    return config_source(parse_config(document, source=topic, file=f"sources/{topic}.json", folder=Path(".")))


def generated(source: Source, count: int, seed: int = 5) -> list[tuple[str | None, str]]:
    """``count`` records as the JSON generator would send them: (key, JSON text)."""
    fake = Faker()
    fake.seed_instance(seed)
    assert source.generate_from is not None
    records = source.generate_from(fake, count, FIXED_NOW, 0)
    return [(source.entity_key(source.transform(r.model_dump())), r.model_dump_json(by_alias=True)) for r in records]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with serve_registry(tmp_path / "registry.sqlite") as url:
        yield url


# --- wire formats ------------------------------------------------------------------------------------


def test_confluent_framing_round_trips_and_refuses_what_is_not_framed() -> None:
    framed = confluent_frame("7", b"\x02ab")
    assert framed[:5] == b"\x00\x00\x00\x00\x07"
    schema_id, body = confluent_split(framed)
    assert (schema_id, bytes(body)) == ("7", b"\x02ab")
    for value, message in [(b'{"json":1}', "magic byte 0x7b"), (b"\x00\x00", "shorter"), (b"\x00" * 5, "id 0")]:
        with pytest.raises(NotAvro, match=message):
            confluent_split(value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("avro/binary+0123abcd0123abcd0123abcd0123abcd", "0123abcd0123abcd0123abcd0123abcd"), ("Avro/Binary+42", "42")],
)
def test_event_hubs_content_type_names_the_schema_id(header: str, expected: str) -> None:
    assert schema_id_of_content_type(header) == expected


@pytest.mark.parametrize("header", [None, "", "application/json", "avro/binary", "avro/binary+", "avro/binary+a/b"])
def test_a_content_type_without_an_avro_schema_id_is_not_avro(header: str | None) -> None:
    with pytest.raises(NotAvro):
        schema_id_of_content_type(header)


# --- the codec ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("quickstart", sorted(QUICKSTARTS))
def test_every_quickstart_record_survives_avro_binary_as_the_json_converter_sends_it(quickstart: str) -> None:
    """Bytes travel as base64, logical types as numbers, unions plain: Avro decodes to exactly the JSON form."""
    source = config_source(quickstart_config(quickstart, seed=3))
    schema = quickstart_config(quickstart).schema_json
    parsed = parse_writer_schema(json.dumps(schema))
    for _, text in generated(source, 25):
        record = orjson.loads(text)
        assert decode(parsed, encode(schema, parsed, record)) == record


def test_truncated_and_overlong_bodies_are_not_avro() -> None:
    schema = quickstart_config("orders").schema_json
    parsed = parse_writer_schema(json.dumps(schema))
    (_, text), *_ = generated(config_source(quickstart_config("orders")), 1)
    body = encode(schema, parsed, orjson.loads(text))
    with pytest.raises(NotAvro, match="does not decode"):
        decode(parsed, body[: len(body) // 2])
    with pytest.raises(NotAvro, match="2 bytes left"):
        decode(parsed, body + b"\x00\x00")


# --- the Confluent REST client against the local host's registry --------------------------------------


def test_the_registry_keeps_one_id_per_schema_and_persists_it(tmp_path: Path) -> None:
    store = tmp_path / "registry.sqlite"
    schema = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    evolved = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}]}
    )
    with serve_registry(store) as url:
        client = ConfluentRegistry(url)
        first = client.register("things-value", schema)
        assert client.register("things-value", json.dumps(json.loads(schema), indent=2)) == first
        second = client.register("things-value", evolved)
        assert second != first
        assert client.schema_text(first) == ("AVRO", schema)
        with pytest.raises(UnknownSchema, match="no schema 999"):
            client.schema_text("999")
        versions = requests.get(f"{url}/subjects/things-value/versions", timeout=10).json()
        assert versions == [1, 2]
        latest = requests.get(f"{url}/subjects/things-value/versions/latest", timeout=10).json()
        assert (latest["version"], str(latest["id"])) == (2, second)
        refused = requests.post(f"{url}/subjects/x/versions", json={"schema": '{"type": "nope"}'}, timeout=10)
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42201)
    with serve_registry(store) as url:  # a restarted host keeps its ids
        assert ConfluentRegistry(url).schema_text(second) == ("AVRO", evolved)


def test_an_unreachable_registry_waits_and_a_wrong_url_is_refused(registry: str) -> None:
    with pytest.raises(RegistryUnavailable):
        ConfluentRegistry(f"http://127.0.0.1:{free_port()}").schema_text("1")
    with pytest.raises(RegistryRefused, match="HTTP 404"):  # not the registry's own 40403: a wrong URL
        ConfluentRegistry(registry + "/not-the-api").schema_text("1")
    with pytest.raises(RegistryRefused, match="https"):
        ConfluentRegistry("http://registry.example.com", username="key", password="secret")


# --- the decoder: dead letters and waits --------------------------------------------------------------


def _records(
    values: list[bytes | None], topic: str = "orders", content_types: list[str | None] | None = None
) -> list[KafkaRecord]:
    types = content_types or [None] * len(values)
    return [
        KafkaRecord(topic, 0, offset, f"k{offset}", value, FIXED_NOW_MS, content_type)
        for offset, (value, content_type) in enumerate(zip(values, types, strict=True))
    ]


def test_avro_records_land_and_hostile_ones_are_dead_lettered_with_their_reason(registry: str) -> None:
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    good = [encoder.encode(key, text).value for key, text in generated(source, 6)]
    schema_id = int(encoder.schema_id())
    values: list[bytes | None] = [
        *good[:3],
        b'{"orderid": 1}',  # JSON, no magic byte
        struct.pack(">bI", 0, schema_id + 50) + good[0][5:],  # an id the registry does not hold
        good[3][: len(good[3]) - 4],  # truncated Avro
        *good[4:],
    ]
    batch = process_batch(source, _records(values), max_record_bytes=1 << 20, decoder=AvroDecoder(client))
    reasons = {letter.record.offset: letter.reason for letter in batch.dead_letters}
    assert reasons == {3: "not_avro", 4: "unknown_schema", 5: "not_avro"}
    rows = batch.rows()
    assert [row["_offset"] for row in rows] == [0, 1, 2, 6, 7]
    expected = [orjson.loads(text) for _, text in generated(source, 6)]
    assert [orjson.loads(row["_received"]) for row in rows] == [expected[i] for i in (0, 1, 2, 4, 5)]
    assert all(row["_extra"] is None and row["_event_time_source"] == "kafka" for row in rows)


def test_a_registry_outage_raises_so_the_batch_waits_then_the_same_batch_flows(tmp_path: Path) -> None:
    source = avro_source()
    store, port = tmp_path / "registry.sqlite", free_port()
    with serve_registry(store, port) as url:
        encoder = AvroEncoder(source, ConfluentRegistry(url), "orders")
        values: list[bytes | None] = [encoder.encode(key, text).value for key, text in generated(source, 4)]
    decoder = AvroDecoder(ConfluentRegistry(f"http://127.0.0.1:{port}"))  # a new worker: nothing cached
    with pytest.raises(RegistryUnavailable):
        process_batch(source, _records(values), max_record_bytes=1 << 20, decoder=decoder)
    with serve_registry(store, port):
        batch = process_batch(source, _records(values), max_record_bytes=1 << 20, decoder=decoder)
    assert (len(batch.rows()), batch.dead_letters) == (4, [])
    again = process_batch(source, _records(values), max_record_bytes=1 << 20, decoder=decoder)  # cached: no registry
    assert len(again.rows()) == 4


def test_an_unknown_id_is_asked_again_after_a_while_not_on_every_batch(registry: str) -> None:
    source = avro_source()
    client = ConfluentRegistry(registry)
    asked: list[str] = []

    class Counting:
        kind = "confluent"

        def schema_text(self, schema_id: str) -> tuple[str, str]:
            asked.append(schema_id)
            return client.schema_text(schema_id)

        def register(self, subject: str, schema: str) -> str:
            return client.register(subject, schema)

    now = [0.0]
    decoder = AvroDecoder(Counting(), clock=lambda: now[0])
    (_, text), *_ = generated(source, 1)
    good = AvroEncoder(source, client, "orders").encode("k", text).value
    future_id = struct.pack(">bI", 0, 2) + good[5:]
    for _ in range(3):
        process_batch(source, _records([future_id]), max_record_bytes=1 << 20, decoder=decoder)
    assert asked == ["2"]
    now[0] = 61.0
    client.register("other-value", json.dumps({"type": "record", "name": "X", "fields": []}))  # id 2 now exists
    batch = process_batch(source, _records([future_id]), max_record_bytes=1 << 20, decoder=decoder)
    (letter,) = batch.dead_letters  # id 2 is known now, but it is not the schema this body was written with
    assert asked == ["2", "2"] and (letter.reason, "left after the record" in letter.detail) == ("not_avro", True)


# --- Event Hubs Schema Registry, up to the SDK's HTTP transport -----------------------------------------


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
    records = _records(values, content_types=content_types)
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


def test_a_newer_writer_schema_with_a_field_the_model_lacks_keeps_it_in_extra(registry: str) -> None:
    source = avro_source()
    client = ConfluentRegistry(registry)
    newer = json.loads(AvroEncoder(source, client, "orders").schema_text)
    newer["fields"].append(
        {
            "name": "coupon",
            "type": [
                "null",
                {
                    "type": "record",
                    "name": "Coupon",
                    "fields": [{"name": "code", "type": "string"}, {"name": "percent", "type": "int"}],
                },
            ],
            "default": None,
        }
    )
    schema_id = client.register("orders-value", json.dumps(newer))
    (_, text), *_ = generated(source, 1)
    record = orjson.loads(text) | {"coupon": {"code": "SPRING", "percent": 10}}
    value = confluent_frame(schema_id, encode(newer, parse_writer_schema(json.dumps(newer)), record))
    (row,) = process_batch(source, _records([value]), max_record_bytes=1 << 20, decoder=AvroDecoder(client)).rows()
    assert json.loads(row["_extra"]) == {"coupon": {"code": "SPRING", "percent": 10}}
    assert orjson.loads(row["_received"]) == record


def test_the_avro_generators_producer_uses_the_bindings_credentials() -> None:
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings, load_source_settings

    plain = load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    sender = load_source_settings(
        "orders", {"ORDERS_KAFKA_PRODUCER_SASL_PASSWORD": "Endpoint=sb://x/;SharedAccessKey=k"}
    )
    config = producer_config(plain, sender)
    assert (config["security.protocol"], config["sasl.mechanism"], config["sasl.username"]) == (
        "sasl_ssl",
        "PLAIN",
        "$ConnectionString",
    )
    assert config["sasl.password"].endswith("SharedAccessKey=k"), "the send-only rule, as the output binding's"
    oauth = load_settings(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "KAFKA_OAUTH_CLIENT_ID": "id",
            "KAFKA_OAUTH_CLIENT_SECRET": "secret",
            "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.example/token",
            "KAFKA_OAUTH_SCOPE": "https://evhns.servicebus.windows.net/.default",
        }
    )
    config = producer_config(oauth, sender)
    assert (config["sasl.mechanism"], config["sasl.oauthbearer.method"]) == ("OAUTHBEARER", "oidc")
    assert "sasl.password" not in config
    assert producer_config(load_settings({}), sender) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "linger.ms": 50,
        "batch.size": 1_048_576,
        "acks": "all",
        "enable.idempotence": False,
    }


@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({}, True),
        ({"SCHEMA_REGISTRY_URL": " "}, True),
        ({"SCHEMA_REGISTRY_URL": "http://localhost:8081"}, False),
        ({"SCHEMA_REGISTRY_KIND": "eventhubs"}, False),
    ],
)
def test_the_local_host_serves_its_registry_only_when_no_other_is_named(settings: dict[str, str], served: bool) -> None:
    from devhost.runtime.host import serves_registry

    assert serves_registry(settings) is served
