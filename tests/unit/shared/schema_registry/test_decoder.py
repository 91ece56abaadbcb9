"""The Avro decoder in a batch: hostile values dead-lettered with their reason, a registry outage waited
out, unknown ids asked again after a while, unknown fields kept."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import fastavro
import orjson
import pytest

from devhost.registry.server import serve_registry
from devhost.services.processes import free_port
from shared.batch import process_batch
from shared.datagen.config import parse_config
from shared.datagen.source import config_source
from shared.errors import ConfigurationError, RegistryRefused, RegistryUnavailable
from shared.records import KafkaRecord
from shared.schema_registry import decoder as decoder_module
from shared.schema_registry.avro_binary import encode, parse_writer_schema
from shared.schema_registry.client import ConfluentRegistry, RegistrySchema, UnknownSchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from shared.schema_registry.wire import confluent_frame
from shared.settings import Settings, load_settings
from tests.conftest import FIXED_NOW_MS
from tests.unit.shared.schema_registry.conftest import AVRO_CONFIG, avro_source, generated, records_of
from tests.unit.shared.schema_registry.test_avro_binary import zigzag


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
    batch = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=AvroDecoder(client))
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
        process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=decoder)
    with serve_registry(store, port):
        batch = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=decoder)
    assert (len(batch.rows()), batch.dead_letters) == (4, [])
    again = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=decoder)  # cached: no registry
    assert len(again.rows()) == 4


def test_an_unknown_id_is_asked_again_after_a_while_not_on_every_batch(registry: str) -> None:
    source = avro_source()
    client = ConfluentRegistry(registry)
    asked: list[str] = []

    class Counting:
        kind = "confluent"
        max_call_seconds = client.max_call_seconds

        def schema(self, schema_id: str) -> RegistrySchema:
            asked.append(schema_id)
            return client.schema(schema_id)

        def register(self, subject: str, schema: str) -> str:
            return client.register(subject, schema)

    now = [0.0]
    decoder = AvroDecoder(Counting(), clock=lambda: now[0])
    (_, text), *_ = generated(source, 1)
    good = AvroEncoder(source, client, "orders").encode("k", text).value
    future_id = struct.pack(">bI", 0, 2) + good[5:]
    for _ in range(3):
        process_batch(source, records_of([future_id]), max_record_bytes=1 << 20, decoder=decoder)
    assert asked == ["2"]
    now[0] = 61.0
    client.register("other-value", json.dumps({"type": "record", "name": "X", "fields": []}))  # id 2 now exists
    batch = process_batch(source, records_of([future_id]), max_record_bytes=1 << 20, decoder=decoder)
    (letter,) = batch.dead_letters  # id 2 is known now, but it is not the schema this body was written with
    assert asked == ["2", "2"] and (letter.reason, "left after the record" in letter.detail) == ("not_avro", True)


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
    value = confluent_frame(schema_id, encode(parse_writer_schema(json.dumps(newer)), record))
    (row,) = process_batch(source, records_of([value]), max_record_bytes=1 << 20, decoder=AvroDecoder(client)).rows()
    assert json.loads(row["_extra"]) == {"coupon": {"code": "SPRING", "percent": 10}}
    assert orjson.loads(row["_received"]) == record


def test_a_nan_or_infinity_in_a_field_the_model_lacks_is_kept_in_received(registry: str) -> None:
    """``_received`` is the only copy Avro records keep: orjson writes NaN and infinities as null, so they landed as
    a null would (a review's case). They are written as the tokens a JSON producer sends, which the JSON path
    reads; a null stays null."""
    source = avro_source()
    client = ConfluentRegistry(registry)
    newer = json.loads(AvroEncoder(source, client, "orders").schema_text)
    newer["fields"].append({"name": "score", "type": ["null", "double"], "default": None})
    schema_id = client.register("orders-value", json.dumps(newer))
    (_, text), *_ = generated(source, 1)
    writer = parse_writer_schema(json.dumps(newer))
    scores = [float("nan"), float("inf"), float("-inf"), None, 1.5]
    values = [confluent_frame(schema_id, encode(writer, orjson.loads(text) | {"score": s})) for s in scores]
    rows = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=AvroDecoder(client)).rows()
    received = [row["_received"] for row in rows]
    assert [text.rsplit('"score":', 1)[1].rstrip("}") for text in received] == [
        "NaN", "Infinity", "-Infinity", "null", "1.5"
    ]  # fmt: skip
    assert [json.loads(text)["score"] for text in received][1:] == [float("inf"), float("-inf"), None, 1.5]


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_number_in_a_modelled_field_is_a_schema_dead_letter_beside_records_that_land(
    registry: str, number: float
) -> None:
    """Avro holds NaN and infinities; the model refuses them, and no lake format stores them. A record the model
    refused stays as it came from the validator, a dict too: taken for a valid one, it landed."""
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    (key, text), *_ = generated(source, 1)
    good = encoder.encode(key, text).value
    record = orjson.loads(text) | {"orderunits": number}
    bad = confluent_frame(encoder.schema_id(), encode(parse_writer_schema(encoder.schema_text), record))
    batch = process_batch(source, records_of([good, bad]), max_record_bytes=1 << 20, decoder=AvroDecoder(client))
    assert [row["_offset"] for row in batch.rows()] == [0]
    assert [(letter.record.offset, letter.reason) for letter in batch.dead_letters] == [(1, "schema")]
    assert "orderunits" in batch.dead_letters[0].detail


@pytest.mark.parametrize("depth", [300, 3000, 100_000])
def test_a_record_of_a_recursive_writer_schema_is_a_dead_letter_however_deep(registry: str, depth: int) -> None:
    """Its depth costs a byte a level: 100,000 levels in 100 KB crashed fastavro's reader, and the worker."""
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    newer = json.loads(encoder.schema_text)
    node = {"type": "record", "name": "Node", "fields": [{"name": "next", "type": ["null", "Node"], "default": None}]}
    newer["fields"].append({"name": "chain", "type": ["null", node], "default": None})
    schema_id = client.register("orders-value", json.dumps(newer))
    ((key, text),) = generated(source, 1)
    body = encoder.encode(key, text).value[5:] + b"\x02" * (depth + 1) + b"\x00"  # chain: depth+1 Nodes
    batch = process_batch(
        source, records_of([confluent_frame(schema_id, body)]), max_record_bytes=1 << 20, decoder=AvroDecoder(client)
    )
    (letter,) = batch.dead_letters
    assert batch.row_count == 0 and "recursive Avro schema" in letter.detail


THING = {
    "type": "record",
    "name": "Thing",
    "namespace": "x",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}


def _thing_source(schema: dict[str, Any]) -> Any:
    config = AVRO_CONFIG | {"kafka.topic": "things", "schema.string": json.dumps(schema)}
    return config_source(parse_config({"name": "things", "config": config}, source="things", file="t", folder=Path()))


def _produced(registry: str, writer: dict[str, Any], records: list[dict[str, Any]]) -> list[bytes]:
    """What a producer with its own (older or newer) schema sends: its schema registered, each record framed."""
    schema_id = ConfluentRegistry(registry).register("things-value", json.dumps(writer))
    parsed = fastavro.parse_schema(writer)
    framed = []
    for record in records:
        sink = io.BytesIO()
        fastavro.schemaless_writer(sink, parsed, record)
        framed.append(confluent_frame(schema_id, sink.getvalue()))
    return framed


def _read_as(registry: str, source: Any, values: list[bytes]) -> Any:
    """The batch ``source`` makes of ``values`` (Confluent-framed Avro) with a decoder on ``registry``."""
    decoder = AvroDecoder(ConfluentRegistry(registry))
    return process_batch(source, records_of(values, topic="things"), max_record_bytes=1 << 20, decoder=decoder)


def _with(field: dict[str, Any], *, replacing: str | None = None) -> dict[str, Any]:
    kept = [item for item in THING["fields"] if item["name"] != replacing]
    return THING | {"fields": [*kept, field]}


COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "OTHER"], "default": "OTHER"}


@pytest.mark.parametrize(
    ("reader", "writer", "record", "column", "landed"),
    [
        (_with({"name": "qty", "type": "int", "default": 1}), THING, {"id": 1, "name": "a"}, "qty", 1),
        (
            _with({"name": "title", "type": "string", "aliases": ["name"]}, replacing="name"),
            THING,
            {"id": 1, "name": "a"},
            "title",
            "a",
        ),
        (
            _with({"name": "color", "type": COLOR}),
            _with({"name": "color", "type": COLOR | {"symbols": ["RED", "OTHER", "BLUE"]}}),
            {"id": 1, "name": "a", "color": "BLUE"},
            "color",
            "OTHER",
        ),
        (
            THING,
            _with({"name": "name", "type": "bytes"}, replacing="name"),
            {"id": 1, "name": b"hello"},
            "name",
            "hello",
        ),
    ],
    ids=["field added with a default", "field renamed, alias", "enum symbol unknown to the reader", "bytes to string"],
)
def test_records_of_an_evolved_writer_schema_are_read_as_the_source_reads_them(
    registry: str, reader: dict[str, Any], writer: dict[str, Any], record: dict[str, Any], column: str, landed: Any
) -> None:
    """Avro's resolution rules between the producer's schema and the source's: defaults, aliases, enum
    defaults, promotions; what the record was sent as stays in _received."""
    batch = _read_as(registry, _thing_source(reader), _produced(registry, writer, [record]))
    assert [letter.detail for letter in batch.dead_letters] == []
    (row,) = batch.rows()
    assert row[column] == landed
    assert orjson.loads(row["_received"])["id"] == 1


def test_a_field_only_the_writer_has_still_reaches_extra_when_the_record_is_resolved(registry: str) -> None:
    reader = _with({"name": "qty", "type": "int", "default": 1})
    values = _produced(registry, _with({"name": "coupon", "type": "string"}), [{"id": 1, "name": "a", "coupon": "X"}])
    (row,) = _read_as(registry, _thing_source(reader), values).rows()
    assert (row["qty"], json.loads(row["_extra"])) == (1, {"coupon": "X"})


def test_junk_values_naming_random_ids_leave_a_bounded_memory_of_unknown_ids(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each junk value is an unknown_schema dead letter; only the newest ``MAX_UNKNOWN_IDS`` unknown ids (and
    the current batch's, which it reads) are remembered, so a hostile stream cannot grow a worker's memory."""
    monkeypatch.setattr(decoder_module, "MAX_UNKNOWN_IDS", 8)
    now = [0.0]
    decoder = AvroDecoder(ConfluentRegistry(registry), clock=lambda: now[0])
    for batch_number in range(4):
        now[0] += 1
        ids = [1000 + 10 * batch_number + i for i in range(5)]
        junk = [struct.pack(">bI", 0, schema_id) + b"\x02" for schema_id in ids]
        batch = process_batch(avro_source(), records_of(junk), max_record_bytes=1 << 20, decoder=decoder)
        assert {letter.reason for letter in batch.dead_letters} == {"unknown_schema"} and batch.row_count == 0
        remembered = set(decoder._unknown_since)
        assert remembered == set(decoder._schemas) and {str(i) for i in ids} <= remembered
        assert len(remembered) == min(8, 5 * (batch_number + 1))


def test_a_record_declaring_countless_zero_width_array_items_is_a_dead_letter_without_decoding(registry: str) -> None:
    """An array of nulls: 2**62 items in a few bytes would take the worker's memory; its schema is refused
    up front (a million items here, so that without the refusal the test fails fast instead)."""
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    newer = json.loads(encoder.schema_text)
    newer["fields"].append({"name": "pad", "type": {"type": "array", "items": "null"}, "default": []})
    schema_id = client.register("orders-value", json.dumps(newer))
    ((key, text),) = generated(source, 1)
    body = encoder.encode(key, text).value[5:] + zigzag(2**20) + b"\x00"
    batch = process_batch(
        source, records_of([confluent_frame(schema_id, body)]), max_record_bytes=1 << 20, decoder=AvroDecoder(client)
    )
    (letter,) = batch.dead_letters
    assert batch.row_count == 0 and letter.reason == "unknown_schema" and "zero bytes" in letter.detail


ENUMS = {
    "type": "record",
    "name": "Thing",
    "namespace": "x",
    "fields": [
        {"name": "id", "type": "long"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "note", "type": ["null", "string", "long"], "default": None},
    ],
}


@pytest.mark.parametrize(
    "body",
    [zigzag(7) + zigzag(-1) + zigzag(0), zigzag(7) + zigzag(0) + zigzag(-1) + zigzag(12345)],
    ids=["enum index -1", "union index -1"],
)
def test_a_negative_enum_or_union_index_is_not_avro_not_the_last_symbol(registry: str, body: bytes) -> None:
    schema_id = ConfluentRegistry(registry).register("things-value", json.dumps(ENUMS))
    batch = _read_as(registry, _thing_source(ENUMS), [confluent_frame(schema_id, body)])
    assert batch.row_count == 0
    assert [(letter.reason, "index -1" in letter.detail) for letter in batch.dead_letters] == [("not_avro", True)]


class _NoSchemas:
    """A registry that holds no schema; ``answer`` decides each call (raise, or block until released)."""

    kind = "confluent"
    max_call_seconds = 10.0

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def schema(self, schema_id: str) -> RegistrySchema:
        self.answer(schema_id)
        raise UnknownSchema(f"the registry has no schema {schema_id}")

    def register(self, subject: str, schema: str) -> str:
        raise NotImplementedError


def _junk(ids: list[int]) -> list[bytes | None]:
    return [struct.pack(">bI", 0, i) + b"\x02" for i in ids]


def test_concurrent_batches_on_one_decoder_each_read_their_own_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two sources on one registry share a decoder: one batch's bound on remembered unknown ids must not
    take an id from the other between its fetch and its read (a KeyError failed that batch)."""
    monkeypatch.setattr(decoder_module, "MAX_UNKNOWN_IDS", 2)
    asked_two, release = threading.Event(), threading.Event()

    def slow_on_two(schema_id: str) -> None:
        if schema_id == "2":
            asked_two.set()
            assert release.wait(10)

    decoder = AvroDecoder(_NoSchemas(slow_on_two))
    outcome: dict[str, object] = {}

    def first() -> None:
        try:
            batch = process_batch(avro_source(), records_of(_junk([1, 2])), max_record_bytes=1 << 20, decoder=decoder)
            outcome["first"] = sorted(letter.reason for letter in batch.dead_letters)
        except Exception as error:  # the outcome is asserted below
            outcome["first"] = error

    thread = threading.Thread(target=first)
    thread.start()
    assert asked_two.wait(10)  # id 1 is known as unknown, id 2 is being asked
    other = process_batch(avro_source(), records_of(_junk([100, 101, 102])), max_record_bytes=1 << 20, decoder=decoder)
    assert {letter.reason for letter in other.dead_letters} == {"unknown_schema"}
    release.set()
    thread.join(10)
    assert outcome["first"] == ["unknown_schema", "unknown_schema"]


def test_many_unknown_ids_get_through_a_rate_limiting_registry() -> None:
    """Junk values naming 200 ids, a registry allowing 10 calls a second (then 429: RegistryUnavailable), the
    processing function's retry delays on a fake clock: each attempt keeps what it learnt, so the batch ends
    in about 20 attempts instead of starting over for good."""
    now, used, calls = [0.0], {}, []

    def rate_limited(schema_id: str) -> None:
        second = int(now[0])
        if used.get(second, 0) >= 10:
            raise RegistryUnavailable("schema registry: HTTP 429 Too Many Requests")
        used[second] = used.get(second, 0) + 1
        calls.append(schema_id)

    decoder = AvroDecoder(_NoSchemas(rate_limited), clock=lambda: now[0])
    records = records_of(_junk([1_000_000 + i for i in range(200)]))
    for attempt in range(100):
        try:
            batch = process_batch(avro_source(), records, max_record_bytes=1 << 20, decoder=decoder)
        except RegistryUnavailable:
            now[0] += [2, 4, 8, 16, 32][attempt % 5]  # process_<source>'s retry delays, then again in place
            continue
        break
    else:
        pytest.fail(f"200 unknown ids never got past the rate limit: {len(calls)} registry calls")
    assert {letter.reason for letter in batch.dead_letters} == {"unknown_schema"} and batch.row_count == 0
    assert attempt <= 25 and len(set(calls)) == 200


def test_an_attempt_spends_a_bounded_time_on_the_registry_and_the_next_goes_on() -> None:
    """A slow registry (each call a second) is asked while the attempt has spent less than
    REGISTRY_SECONDS_PER_BATCH; the batch waits (RegistryUnavailable) and its next attempt fetches on."""
    now = [0.0]

    def slow(_: str) -> None:
        now[0] += 1.0

    decoder = AvroDecoder(_NoSchemas(slow), clock=lambda: now[0])
    records = records_of(_junk(list(range(1, 21))))
    with pytest.raises(RegistryUnavailable, match="5 of 20 schemas answered"):
        process_batch(avro_source(), records, max_record_bytes=1 << 20, decoder=decoder)
    assert now[0] == decoder_module.REGISTRY_SECONDS_PER_BATCH == 5.0
    with pytest.raises(RegistryUnavailable, match="5 of 15 schemas answered"):
        process_batch(avro_source(), records, max_record_bytes=1 << 20, decoder=decoder)


class _Holding:
    """A registry holding one schema under every id (any producer allowed to register can put it there)."""

    kind = "confluent"
    max_call_seconds = 10.0

    def __init__(self, schema: Any) -> None:
        self.text = json.dumps(schema)

    def schema(self, schema_id: str) -> RegistrySchema:
        return RegistrySchema("AVRO", self.text)

    def register(self, subject: str, schema: str) -> str:
        raise NotImplementedError


def _in_a_worker(script: str) -> subprocess.CompletedProcess[str]:
    """``script`` run by a separate interpreter (a crash or its memory stays there), the repository importable."""
    root = Path(__file__).resolve().parents[4]
    prelude = f"import sys\nsys.path.insert(0, {str(root)!r})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(script)], capture_output=True, text=True, timeout=300, cwd=root
    )


def test_a_record_of_a_schema_carrying_fastavros_markers_is_a_dead_letter_not_a_worker_crash() -> None:
    """The schema names fastavro's own keys, so fastavro took it as parsed and a recursive type went past every
    check: one record nesting 600,000 levels (600 KB, within the size limit) crashed the worker (SIGSEGV)."""
    done = _in_a_worker(
        """
        from shared.batch import process_batch
        from shared.schema_registry.decoder import AvroDecoder
        from shared.schema_registry.wire import confluent_frame
        from tests.unit.shared.schema_registry.conftest import avro_source, records_of
        from tests.unit.shared.schema_registry.test_avro_binary import FASTAVRO_MARKERS
        from tests.unit.shared.schema_registry.test_decoder import _Holding

        body = b"\\x00" + b"\\x02" * 600_000 + b"\\x00"  # a: x=0; b: R nested 600,000 deep
        decoder = AvroDecoder(_Holding(FASTAVRO_MARKERS))
        batch = process_batch(avro_source(), records_of([confluent_frame("7", body)]), max_record_bytes=1 << 20,
                              decoder=decoder)
        print("LETTERS", [(str(letter.reason), letter.detail) for letter in batch.dead_letters])
        """
    )
    assert done.returncode == 0, f"the worker died: {done.returncode} {done.stderr[-500:]}"
    assert "LETTERS [('unknown_schema', " in done.stdout and "fastavro's own marker" in done.stdout, done.stdout


ONE_BOOLEAN_RECORD = {"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}]}
AMPLIFIER = {
    "type": "record",
    "name": "Top",
    "fields": [{"name": "xs", "type": {"type": "array", "items": ONE_BOOLEAN_RECORD}}],
}


def test_records_within_the_size_limit_that_decode_to_gigabytes_are_oversized_without_decoding() -> None:
    """An array of one-boolean records: a byte an item on the wire, hundreds decoded. Six 1 MiB records took
    1.5 GB (a 2 GB instance dies, is handed the same batch, dies again); each is counted, not decoded."""
    done = _in_a_worker(
        """
        import resource
        from shared.schema_registry.decoder import AvroDecoder
        from shared.schema_registry.wire import confluent_frame
        from tests.unit.shared.schema_registry.conftest import records_of
        from tests.unit.shared.schema_registry.test_avro_binary import zigzag
        from tests.unit.shared.schema_registry.test_decoder import AMPLIFIER, _Holding

        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        items = (1 << 20) - 20
        values = [confluent_frame("7", zigzag(items) + b"\\x00" * items + b"\\x00")] * 6  # 1 MiB - 11 bytes each
        batch = AvroDecoder(_Holding(AMPLIFIER)).decode(records_of(values), values)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024
        print("GROWN_MB", grown, "LETTERS", sorted({str(letter.reason) for letter in batch.letters}), len(batch.values))
        """
    )
    assert done.returncode == 0, done.stderr[-500:]
    grown = int(done.stdout.split("GROWN_MB ")[1].split()[0])
    assert "LETTERS ['oversized'] 0" in done.stdout and grown < 100, done.stdout


def test_a_batch_whose_records_together_decode_to_too_many_items_dead_letters_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each record within its bound, but many of them: past MAX_BATCH_REPEATED_VALUES the batch's further records
    are oversized (redrivable) instead of all held decoded at once; records of array-free schemas never count."""
    monkeypatch.setattr(decoder_module, "MAX_BATCH_REPEATED_VALUES", 1_000)
    decoder = AvroDecoder(_Holding(AMPLIFIER))
    # 1,000 weighted items each (500 one-boolean records) from a 502-byte body: 498 past one per byte
    values: list[bytes | None] = [confluent_frame("7", zigzag(500) + b"\x01" * 500 + b"\x00")] * 6
    batch = decoder.decode(records_of(values), values)
    assert [len(value["xs"]) for value in batch.values] == [500, 500, 500]
    assert [(letter.record.offset, letter.reason) for letter in batch.letters] == [
        (i, "oversized") for i in range(3, 6)
    ]
    assert "past the batch's 1,000" in batch.letters[0].detail
    again = decoder.decode(records_of(values[:3]), values[:3])  # the budget is the batch's, not the worker's
    assert len(again.values) == 3 and again.letters == []


READING = {
    "type": "record",
    "name": "Reading",
    "fields": [{"name": "sensor", "type": "string"}, {"name": "samples", "type": {"type": "array", "items": "double"}}],
}


def test_a_full_batch_of_ordinary_records_with_arrays_lands_whole() -> None:
    """A sensor's minute of samples, 250 doubles (2 KB), 10,000 to a batch (host.json maxBatchSize): its items
    take their bytes on the wire, so the batch's bound never counts them (a review found 2,000 of them
    dead-lettered by how the batch was cut)."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(READING), {"sensor": "s-1", "samples": [20.5] * 250})
    values: list[bytes | None] = [confluent_frame("7", buffer.getvalue())] * 10_000
    batch = AvroDecoder(_Holding(READING)).decode(records_of(values), values)
    assert batch.letters == [] and len(batch.values) == 10_000


def test_a_batch_of_more_junk_ids_than_a_worker_remembers_completes_while_another_source_flows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch naming more unknown ids than MAX_UNKNOWN_IDS needs several attempts (calls start only within
    REGISTRY_SECONDS_PER_BATCH); another Avro source's batches on the same decoder, completing in between, made
    it forget what each attempt learnt, so it never completed and its partition waited for good."""
    monkeypatch.setattr(decoder_module, "MAX_UNKNOWN_IDS", 40)
    now = [0.0]

    def slow(_: str) -> None:
        now[0] += 0.1  # 50 calls an attempt

    decoder = AvroDecoder(_NoSchemas(slow), clock=lambda: now[0])
    hostile = records_of(_junk([10_000_000 + i for i in range(150)]))
    pageviews, other = avro_source("pageviews", "pageviews"), records_of(_junk([42]), topic="pageviews")
    for attempt in range(20):
        try:
            batch = process_batch(avro_source(), hostile, max_record_bytes=1 << 20, decoder=decoder)
        except RegistryUnavailable:
            now[0] += [2, 4, 8, 16, 32][attempt % 5]
            process_batch(pageviews, other, max_record_bytes=1 << 20, decoder=decoder)  # it flows meanwhile
            continue
        break
    else:
        pytest.fail(f"150 junk ids never got through in 20 attempts; {len(decoder._unknown_since)} remembered")
    assert {letter.reason for letter in batch.dead_letters} == {"unknown_schema"} and len(batch.dead_letters) == 150
    assert attempt == 2  # 50 ids an attempt, none asked twice
    process_batch(pageviews, other, max_record_bytes=1 << 20, decoder=decoder)
    assert len(decoder._unknown_since) == 40 and decoder._retrying == {}  # bounded again once it is through


def test_what_a_stopped_batch_keeps_is_bounded_when_it_never_comes_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stopped batch's partition may go to another worker: its ids are kept RETRYING_SECONDS at most, and
    at most MAX_RETRYING_BATCHES stopped batches are."""
    monkeypatch.setattr(decoder_module, "MAX_UNKNOWN_IDS", 5)
    monkeypatch.setattr(decoder_module, "MAX_RETRYING_BATCHES", 3)
    now = [0.0]

    def slow(_: str) -> None:
        now[0] += 1.0  # 5 calls an attempt

    decoder = AvroDecoder(_NoSchemas(slow), clock=lambda: now[0])
    for batch_number in range(5):  # five batches of 8 ids, each stopped after its first attempt
        with pytest.raises(RegistryUnavailable):
            process_batch(avro_source(), records_of(_junk([100 * batch_number + i for i in range(1, 9)])),
                          max_record_bytes=1 << 20, decoder=decoder)  # fmt: skip
    assert len(decoder._retrying) == 3 and len(decoder._unknown_since) == 25
    process_batch(avro_source(), records_of(_junk([7_000])), max_record_bytes=1 << 20, decoder=decoder)
    assert len(decoder._unknown_since) == 1 + 3 * 5  # this batch's, and the three kept batches' fifteen
    now[0] += decoder_module.RETRYING_SECONDS + 1
    process_batch(avro_source(), records_of(_junk([7_001])), max_record_bytes=1 << 20, decoder=decoder)
    assert decoder._retrying == {} and len(decoder._unknown_since) == 5


def _config_named(name: str, url: str) -> Any:
    """An Avro source whose Datagen config names the registry ``url`` (``value.converter.schema.registry.url``)."""
    return SimpleNamespace(name=name, registry_url=url, value_format="avro")


CONFLUENT_CREDENTIALS = {
    "SCHEMA_REGISTRY_KIND": "confluent",
    "SCHEMA_REGISTRY_USERNAME": "CCLOUD-API-KEY",
    "SCHEMA_REGISTRY_PASSWORD": "ccloud-api-secret",
}


def _carrying(settings: Settings, *sources: Any) -> list[str]:
    """The registries ``registry_for`` would send the basic credentials to (a refused one carries none)."""
    decoder_module._clients.cache_clear()
    clients = []
    try:
        for source in sources:
            try:
                clients.append(decoder_module.registry_for(source, settings))
            except ConfigurationError:
                continue
    finally:
        decoder_module._clients.cache_clear()
    return [str(getattr(client, "url", "")) for client in clients if getattr(client, "_authorization", None)]


def test_registry_credentials_go_only_to_the_registry_they_were_configured_for() -> None:
    """With SCHEMA_REGISTRY_URL empty (the settings allow it: a config's registry URL is used), the one
    SCHEMA_REGISTRY_USERNAME/PASSWORD went to every registry host any sources/*.json names: the Confluent API key
    and secret in a Basic Authorization header to whoever a dropped-in file names. They go only to
    SCHEMA_REGISTRY_URL; set without it, they are refused, naming the settings (the URL redacted)."""
    settings = load_settings(CONFLUENT_CREDENTIALS | {"SCHEMA_REGISTRY_URL": ""})
    ours = _config_named("orders", "https://psrc-ours.confluent.cloud")
    other = _config_named("dropped_in", "https://key:secret@registry.other-party.example/?token=x")
    carrying = _carrying(settings, ours, other)
    assert len(carrying) <= 1, f"the one SCHEMA_REGISTRY_USERNAME/PASSWORD would be sent to {carrying}"
    assert carrying == []
    with pytest.raises(ConfigurationError) as refused:
        decoder_module.registry_for(other, settings)
    message = str(refused.value)
    assert message.startswith("SCHEMA_REGISTRY_USERNAME/SCHEMA_REGISTRY_PASSWORD are set but SCHEMA_REGISTRY_URL is")
    assert "https://***@registry.other-party.example/" in message and "key:secret" not in message
    assert "token=x" not in message

    configured = load_settings(CONFLUENT_CREDENTIALS | {"SCHEMA_REGISTRY_URL": "https://psrc-ours.confluent.cloud"})
    assert _carrying(configured, ours, other) == ["https://psrc-ours.confluent.cloud"] * 2  # every source: that one


def test_a_registry_a_config_names_is_reached_without_credentials() -> None:
    decoder_module._clients.cache_clear()
    try:
        client = decoder_module.registry_for(_config_named("orders", "https://registry.example"), load_settings({}))
    finally:
        decoder_module._clients.cache_clear()
    assert isinstance(client, ConfluentRegistry) and client.url == "https://registry.example"
    assert client._authorization is None


def test_the_apps_identity_signs_in_only_to_the_event_hubs_registry_the_settings_name() -> None:
    """``eventhubs`` signs in with the app's identity (a bearer token): never to a host a config names."""
    settings = load_settings({"SCHEMA_REGISTRY_KIND": "eventhubs", "SCHEMA_REGISTRY_GROUP": "g"})
    with pytest.raises(ConfigurationError, match=r"^SCHEMA_REGISTRY_KIND=eventhubs needs SCHEMA_REGISTRY_URL"):
        decoder_module.registry_for(_config_named("orders", "https://registry.other-party.example"), settings)


def test_ids_a_registry_refuses_are_asked_after_the_others_so_each_attempt_gets_further() -> None:
    """Review 15: a Confluent registry refusing 20 ids (403, 40301: another team's subjects) and serving the batch's
    one good id, which sorts after them; a call takes a second, an attempt five. The refused ids were neither kept
    nor reordered, so every attempt asked the same five and stopped: the partition never moved. Refusals before
    the registry served this app anything wait (RegistryRefused); asked last, once the good id is served, each is
    its record's own dead letter (the client's 40301 rule)."""
    now = [0.0]
    schema_text = Path("shared/datagen/quickstarts/orders.avsc").read_text()
    good_id = 99

    class Confluent(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            now[0] += 1.0
            schema_id = int(self.path.rsplit("/", 1)[1])
            served = schema_id == good_id
            document = {"schema": schema_text} if served else {"error_code": 40301, "message": "denied: other-team"}
            body = json.dumps(document).encode()
            self.send_response(200 if served else 403)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Confluent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        decoder = AvroDecoder(ConfluentRegistry(f"http://127.0.0.1:{server.server_port}"), clock=lambda: now[0])
        ((_, text),) = generated(avro_source(), 1)
        good = confluent_frame(good_id, encode(parse_writer_schema(schema_text), json.loads(text)))
        values = _junk(list(range(1, 21))) + [good] * 3
        attempts = 0
        while True:
            attempts += 1
            assert attempts <= 15, "the batch does not get past the refused ids"
            try:
                batch = process_batch(avro_source(), records_of(values), max_record_bytes=1 << 20, decoder=decoder)
            except (RegistryUnavailable, RegistryRefused):
                continue
            break
    finally:
        server.shutdown()
        server.server_close()
    assert batch.row_count == 3 and [letter.reason for letter in batch.dead_letters] == ["unknown_schema"] * 20


def test_records_written_with_the_schema_the_generator_registers_are_read_as_written_once(registry: str) -> None:
    """Review 15: the generator registers its config's schema without Datagen's ``arg.properties``; the decoder
    compared the registered schema with the config's own (with them), never equal, so every record the generator
    wrote was decoded a second time by the resolving pass. Results were right; the work was double."""
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    values = [encoder.encode(key, text).value for key, text in generated(source, 3)]
    decoder = AvroDecoder(client)
    batch = process_batch(source, records_of(values), max_record_bytes=1 << 20, decoder=decoder)
    assert batch.row_count == 3 and not batch.dead_letters
    (resolution,) = decoder._reader(source.avro_schema).resolutions.values()
    assert resolution.reader is None, "read as written: one decode"


def test_an_offset_delivered_twice_in_a_batch_is_one_row_or_one_dead_letter_never_both(
    registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 15: a consumer that regained a partition while gathering a batch can deliver a record again. The
    batch's repeat budget spent between the two copies of offset 0 (records with a long array in between) made the
    first a row and the second an ``oversized`` dead letter, and both landed. The first copy is the one that counts."""
    monkeypatch.setattr(decoder_module, "MAX_BATCH_REPEATED_VALUES", 1)  # spent by the first long array
    source = avro_source()
    client = ConfluentRegistry(registry)
    encoder = AvroEncoder(source, client, "orders")
    longer = json.loads(encoder.schema_text)
    longer["fields"].append({"name": "xs", "type": {"type": "array", "items": ONE_BOOLEAN_RECORD}, "default": []})
    longer_id = client.register("orders-value", json.dumps(longer))
    ((key, text),) = generated(source, 1)
    good = encoder.encode(key, text).value
    record = orjson.loads(text) | {"xs": [{"b": True}] * 600}
    amplifier = confluent_frame(longer_id, encode(parse_writer_schema(json.dumps(longer)), record))
    values = [good, amplifier, amplifier, good]
    records = [
        KafkaRecord("orders", 0, offset, "k", value, FIXED_NOW_MS)
        for offset, value in zip([0, 1, 2, 0], values, strict=True)
    ]
    batch = process_batch(source, records, max_record_bytes=1 << 20, decoder=AvroDecoder(client))
    assert sorted(row["_offset"] for row in batch.rows()) == [0, 1]
    assert [letter.record.offset for letter in batch.dead_letters] == [2]


def test_decoders_are_kept_as_long_as_their_registrys_client_and_no_longer() -> None:
    """Review 2026-12-07: decoders were kept by their client's ``id()`` in a dict never emptied, each holding its
    client: every registry configuration a worker ever saw (rotated credentials) kept its decoder and schemas."""
    import gc
    import weakref

    decoder_module._clients.cache_clear()
    try:
        first = _config_named("orders", "https://registry-first.example")
        kept = weakref.ref(decoder_module.decoder_for(first, load_settings({})))
        for number in range(40):
            source = _config_named("orders", f"https://registry-{number}.example")
            decoder = decoder_module.decoder_for(source, load_settings({}))
            assert decoder.registry is decoder_module.registry_for(source, load_settings({}))
        del decoder
        gc.collect()
        assert kept() is None
    finally:
        decoder_module._clients.cache_clear()
