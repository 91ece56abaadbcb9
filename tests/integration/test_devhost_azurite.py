"""The local host on real Azurite: landing through the Blob API, entity state in Table storage across a restart."""

from __future__ import annotations

import json
import socket
import uuid
from collections import Counter
from pathlib import Path

import pytest

from devhost.durable.store import SignalTooLarge, StateTooLarge, StoreUnavailable
from devhost.durable.table_store import CHUNK_CHARS, MAX_STORED_BYTES, TableEntityStore
from devhost.services.azurite import DEFAULT_PORTS, start_azurite
from shared.formats import decode
from shared.generator_ticks import generate_messages
from shared.lake.blob import BlobLake
from shared.settings import load_settings
from shared.sources import SOURCES
from shared.state.keys import encode_key, is_storable_key
from tests.conftest import FIXED_NOW
from tests.integration.harness import DevHost, Run, produce, wait_for


def _device_counts(host: DevHost, expected: Counter[str]) -> dict[str, int | None]:
    found: dict[str, int | None] = {}
    for key in expected:
        status, body = host.get(f"/api/state/mobile/{key}")
        found[key] = body["events"] if status == 200 else None
    return found


def _fail_if_an_azurite_already_answers() -> None:
    """``--storage azurite`` uses an Azurite that already answers on all of the usual ports instead of starting
    one on ``--azurite-dir``: this test would then check that Azurite, whose data outlives the test."""
    answering = []
    for port in DEFAULT_PORTS:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            continue
        answering.append(port)
    if answering == list(DEFAULT_PORTS):
        pytest.fail(
            f"something (an Azurite?) already listens on 127.0.0.1 ports {answering}: the local host would use it"
            " rather than start its own Azurite on the test's directory; stop it and run the test again"
        )


def test_blob_landing_and_table_state_survive_a_restart(broker: str, tmp_path: Path) -> None:
    _fail_if_an_azurite_already_answers()
    run, azurite_dir = Run(), tmp_path / "azurite"
    messages = generate_messages(SOURCES["mobile"], 400, now=FIXED_NOW, seed=2, start_index=0)
    produce(broker, run.topic("mobile"), [(m.key, m.value.encode()) for m in messages])
    expected = Counter(m.key for m in messages)
    settings = run.settings(["mobile"], LAKE_FILE_SYSTEM=f"lake{run.suffix}")
    arguments = ("--storage", "azurite", "--azurite-dir", str(azurite_dir), "--no-timers")
    host = DevHost(broker, tmp_path / "unused", settings, *arguments)
    try:
        wait_for(lambda: _device_counts(host, expected) == dict(expected), 90, "device counts in Table storage")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    _fail_if_an_azurite_already_answers()
    restarted = DevHost(broker, tmp_path / "unused", settings, *arguments)
    try:
        assert _device_counts(restarted, expected) == dict(expected)  # read back from Table storage
        assert restarted.interrupt() == 0, restarted.output()
    finally:
        if restarted.process.poll() is None:
            restarted.kill()
    with start_azurite(azurite_dir, reuse_running=False) as azurite:
        lake = BlobLake.from_settings(
            load_settings(
                {"LAKE_CONNECTION_STRING": azurite.connection_string, "LAKE_FILE_SYSTEM": f"lake{run.suffix}"}
            )
        )
        rows = [row for path in lake.list_paths("raw/mobile") for row in decode("parquet", lake.read(path))]
    assert len(rows) == 400 == len({(r["_partition"], r["_offset"]) for r in rows})


def test_table_store_keeps_a_bucket_sized_state_and_reads_rows_written_before_chunking(tmp_path: Path) -> None:
    """A key bucket's state is far beyond one Table string property (32K characters)."""
    with start_azurite(tmp_path / "azurite", reuse_running=False) as azurite:
        store = TableEntityStore(azurite.connection_string, table=f"Entities{uuid.uuid4().hex[:8]}")
        try:
            bucket = json.dumps(
                {"keys": {f"sensor-{i}": json.dumps({"count": i, "pad": "x" * 900}) for i in range(250)}}
            )
            assert len(bucket) > 7 * CHUNK_CHARS
            accepted = store.enqueue("sensor_stats", "~b3of512", "apply", "{}")
            store.commit("sensor_stats", "~b3of512", bucket, [accepted.id])
            assert store.load("sensor_stats", "~b3of512") == bucket and store.pending() == []
            store.commit("sensor_stats", "~b3of512", '{"keys": {}}', [])  # shorter: no chunk of the old one is left
            assert store.load("sensor_stats", "~b3of512") == '{"keys": {}}'
            store._table.upsert_entity({"PartitionKey": "sensor_stats|k", "RowKey": "state", "state": '{"count": 1}'})
            assert store.load("sensor_stats", "k") == '{"count": 1}'  # a row of the previous format
        finally:
            store.close()


def test_table_store_keeps_entities_whose_escaped_key_would_not_fit_a_table_key(tmp_path: Path) -> None:
    """A storable key of 400 ``:`` escapes to 1,200 characters, past a Table key's 1 KiB."""
    long_key, near_twin = encode_key(":" * 400), encode_key(":" * 399 + "a")
    assert is_storable_key(long_key) and is_storable_key(near_twin)
    with start_azurite(tmp_path / "azurite", reuse_running=False) as azurite:
        store = TableEntityStore(azurite.connection_string, table=f"Entities{uuid.uuid4().hex[:8]}")
        try:
            accepted = [
                store.enqueue("user_activity", key, "apply", f'"{n}"') for n, key in enumerate((long_key, near_twin))
            ]
            assert [(op.key, op.input) for op in store.pending()] == [(long_key, '"0"'), (near_twin, '"1"')]
            for n, (key, operation) in enumerate(zip((long_key, near_twin), accepted, strict=True)):
                store.commit("user_activity", key, f'{{"n": {n}}}', [operation.id])
            assert (
                store.load("user_activity", long_key) == '{"n": 0}'
                and store.load("user_activity", near_twin) == '{"n": 1}'
            )
            assert store.pending() == []
            old = {"PartitionKey": "user_activity|a%2Fb", "RowKey": "op-00000000000000000001", "operation": "apply"}
            store._table.create_entity(old)  # a signal accepted before rows named their entity and key
            assert [(op.entity, op.key) for op in store.pending()] == [("user_activity", "a/b")]
        finally:
            store.close()


def test_table_store_keeps_a_signal_as_large_as_the_app_sends(tmp_path: Path) -> None:
    """A review's run: a 40,121-character apply (the app sends up to 256 KiB, ``MAX_SIGNAL_BYTES``) was refused by
    Azurite (a Table string holds 32K UTF-16 characters) as a plain 500, and its batch retried for ever; the next
    review's: characters past U+FFFF take two of those."""
    large = json.dumps({"keys": {f"device-{i}": "x" * 1000 for i in range(250)}})
    assert 8 * CHUNK_CHARS < len(large) <= 256 * 1024
    with start_azurite(tmp_path / "azurite", reuse_running=False) as azurite:
        store = TableEntityStore(azurite.connection_string, table=f"Entities{uuid.uuid4().hex[:8]}")
        try:
            emoji = json.dumps({"k": "\U0001f600" * 20_000}, ensure_ascii=False)  # 40,018 UTF-16 units: was refused
            texts = (large, None, "", emoji)
            accepted = [store.enqueue("device_activity", "~b1of64", "apply", text) for text in texts]
            assert [(op.operation, op.input) for op in store.pending()] == [("apply", text) for text in texts]
            store.commit("device_activity", "~b1of64", emoji * 4, [op.id for op in accepted])
            assert store.load("device_activity", "~b1of64") == emoji * 4
            assert store.pending() == []
            with pytest.raises(SignalTooLarge):
                store.enqueue("device_activity", "~b1of64", "apply", "x" * MAX_STORED_BYTES)
            with pytest.raises(StateTooLarge):  # 174,689 CJK characters are Azurite's most, as escaped JSON
                store.commit("device_activity", "~b1of64", "中" * 200_000, [])
            store.commit("device_activity", "~b1of64", "中" * 160_000, [])
            assert store.load("device_activity", "~b1of64") == "中" * 160_000
        finally:
            store.close()
    with pytest.raises(StoreUnavailable):  # Azurite stopped: a clear error the host answers with 503
        store.enqueue("device_activity", "~b1of64", "apply", "{}")
