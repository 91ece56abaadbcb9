"""The process_<source> functions through their glue: landing, entities only with state on, and the cycle
collector's thresholds."""

from __future__ import annotations

from pathlib import Path

import azure.functions as func
import pytest

from functions import bindings
from shared.sources import SOURCES
from tests.conftest import records_for
from tests.unit.functions.conftest import user_function


@pytest.mark.parametrize("state_enabled", ["true", "false"])
async def test_processing_function_lands_and_uses_entities_only_when_state_is_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_enabled: str
) -> None:
    from devhost.runtime.host import durable_client_json
    from shared import settings as settings_module
    from shared.errors import TransientError

    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("SENSORS_STATE_ENABLED", state_enabled)
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    events = [
        func.KafkaEvent(body=r.value, key=r.key, partition=0, offset=r.offset, topic="sensors", timestamp=None)
        for r in records_for(SOURCES["sensors"], 5)
    ]
    client = durable_client_json("http://127.0.0.1:9/runtime/webhooks/durabletask/")  # nothing answers there
    process = user_function("process_sensors")
    try:
        if state_enabled == "true":
            with pytest.raises(TransientError, match="read entity state"):
                await process(events=events, client=client)
            assert not list(tmp_path.rglob("*.parquet"))
        else:
            await process(events=events, client=client)
            assert len(list(tmp_path.glob("raw/sensors/date=*/hour=*/sensors+0+*.parquet"))) >= 1
    finally:
        for cached in caches:
            cached.cache_clear()


def test_a_batch_of_rows_is_built_without_the_cycle_collector_running() -> None:
    """The worker's setting, measured by its effect: 20,000 new containers (10,000 rows) start no collection; at
    Python's default thresholds (700 allocations) the same loop starts 28."""
    import gc

    import functions.processing  # noqa: F401  (the worker module sets the collector's thresholds on import)

    collections: list[str] = []

    def count(phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(phase)

    gc.collect()
    gc.callbacks.append(count)
    try:
        rows = [{"offset": index, "fields": [index, str(index)]} for index in range(10_000)]
    finally:
        gc.callbacks.remove(count)
    assert len(rows) == 10_000 and collections == []


async def test_a_lake_that_cannot_be_opened_fails_the_batch_counted_as_infrastructure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Review 15: the lake client and the context were built before the batch's failures were watched, so a setting
    the lake needs, missing, failed every invocation with no failure metric: the partition-waiting alert, which
    counts infrastructure failures, never fired."""
    import functions.processing as processing
    from devhost.runtime.host import durable_client_json
    from shared import invocation
    from shared.errors import ConfigurationError

    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(
        invocation.stalls, "on_failure", lambda source, error_class: counted.append((source, error_class))
    )

    def no_lake() -> None:
        raise ConfigurationError("LAKE_KIND=adls needs LAKE_ACCOUNT_URL (identity) or LAKE_CONNECTION_STRING")

    monkeypatch.setattr(processing, "lake", no_lake)
    events = [func.KafkaEvent(body=b"{}", partition=0, offset=offset, topic="clickstream") for offset in (0, 1)]
    with pytest.raises(ConfigurationError):
        await user_function("process_clickstream")(events=events, client=durable_client_json("http://127.0.0.1:9/"))
    assert counted == [("clickstream", "infrastructure")]


async def test_a_batch_whose_values_cannot_be_read_again_fails_counted_as_infrastructure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch the host left a null value out of is read again from the broker before it is handled; a broker that
    does not answer fails the batch (retried) and makes its partitions wait, counted as a transient failure."""
    from devhost.runtime.host import durable_client_json
    from shared import invocation, kafka_clients
    from shared import settings as settings_module
    from shared.errors import TransientError

    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(
        invocation.stalls, "on_failure", lambda source, error_class: counted.append((source, error_class))
    )
    monkeypatch.setenv("KAFKA_BROKER_LIST", "127.0.0.1:9")  # nothing answers there
    monkeypatch.setattr(kafka_clients.read_values, "__defaults__", (1.0,))  # the timeout
    caches = (bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    events: list[func.KafkaEvent] = [
        bindings.ValueNotHandedOver(handed_over=[b"{}"], body=b"", partition=0, offset=offset, topic="clickstream")
        for offset in (0, 1)
    ]
    try:
        with pytest.raises(TransientError, match="re-reading values timed out"):
            await user_function("process_clickstream")(events=events, client=durable_client_json("http://127.0.0.1:9/"))
    finally:
        for cached in caches:
            cached.cache_clear()
    assert counted == [("clickstream", "transient")]


@pytest.mark.parametrize(
    ("value_format", "registry_kind", "read"),
    [("avro", "eventhubs", True), ("avro", "confluent", False), ("json", "eventhubs", False)],
)
def test_the_content_type_header_is_read_only_for_event_hubs_avro(
    monkeypatch: pytest.MonkeyPatch, value_format: str, registry_kind: str, read: bool
) -> None:
    """Event Hubs Schema Registry Avro carries its schema id in the content-type header, Confluent's in the value."""
    import dataclasses

    import functions.processing as processing
    from shared import settings as settings_module

    url = "https://ns.servicebus.windows.net" if registry_kind == "eventhubs" else "http://127.0.0.1:8081"
    monkeypatch.setenv("SCHEMA_REGISTRY_KIND", registry_kind)
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", url)
    monkeypatch.setenv("SCHEMA_REGISTRY_GROUP", "g")
    settings_module.current_settings.cache_clear()
    try:
        source = dataclasses.replace(SOURCES["orders"], value_format=value_format)
        assert processing._id_in_header(source) is read
    finally:
        settings_module.current_settings.cache_clear()


async def test_records_of_a_source_whose_schema_id_is_a_header_reach_the_batch_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The glue reads the header for such a source (else every Event Hubs Avro record is dead-lettered as having no
    schema id); other sources' records carry none."""
    import base64

    import functions.processing as processing
    from devhost.runtime.host import durable_client_json

    handled: list[list[object]] = []

    async def capture(_context: object, records: list[object], *_: object) -> None:
        handled.append(records)

    monkeypatch.setattr(processing, "handle_batch_with_state", capture)
    monkeypatch.setattr(processing, "lake", lambda: None)

    def header(value: str) -> dict[str, str]:
        return {"Key": "Content-Type", "Value": base64.b64encode(value.encode()).decode()}

    content_type = "avro/binary+" + "a" * 32
    events = [
        func.KafkaEvent(body=b"\x02", partition=0, offset=0, topic="orders", headers=[header(content_type)]),
        func.KafkaEvent(body=b"\x02", partition=0, offset=1, topic="orders", headers=[]),
    ]
    client = durable_client_json("http://127.0.0.1:9/")
    for in_header in (True, False):
        monkeypatch.setattr(processing, "_id_in_header", lambda _source, answer=in_header: answer)
        await user_function("process_orders")(events=events, client=client)
    with_header, without = handled
    assert [record.content_type for record in with_header] == [content_type, None]  # type: ignore[attr-defined]
    assert [record.content_type for record in without] == [None, None]  # type: ignore[attr-defined]
