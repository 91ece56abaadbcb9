"""What the Functions host would index from function_app.app, and the generator's glue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import azure.functions as func
import pytest

from functions import bindings
from functions import generator as generator_functions
from shared.sources import SOURCES
from tests.conftest import ROOT, OutputBinding, app_functions, records_for

EXAMPLE_SETTINGS: dict[str, str] = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]


def _index(env: dict[str, str] | None = None, *, settings: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Index the app in a fresh interpreter, as the worker does at start-up (bindings read settings then).

    ``settings`` are the app settings the worker starts with (default: local.settings.example.json,
    as ``func start`` with a copied local.settings.json), then ``env`` on top.
    """
    script = (
        "import json, function_app\n"
        "out = {}\n"
        "for f in function_app.app.get_functions():\n"
        "    out[f.get_function_name()] = {'json': json.loads(f.get_function_json()),\n"
        "        'settings': [s.get_dict_repr() for s in f._settings]}\n"
        "print(json.dumps(out))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "KAFKA_SECURITY_PROTOCOL"}
    app_settings = EXAMPLE_SETTINGS if settings is None else settings
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=clean | app_settings | (env or {}),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def indexed() -> dict[str, dict[str, Any]]:
    return _index()


def _binding(function: dict[str, Any], kind: str) -> dict[str, Any]:
    (binding,) = [b for b in function["json"]["bindings"] if b["type"] == kind]
    return dict(binding)


def test_one_kafka_trigger_per_source_with_cardinality_many(indexed: dict[str, dict[str, Any]]) -> None:
    triggers = {name: _binding(f, "kafkaTrigger") for name, f in indexed.items() if name.startswith("process_")}
    assert sorted(triggers) == sorted(f"process_{s}" for s in SOURCES)
    for source in SOURCES:
        trigger = triggers[f"process_{source}"]
        upper = source.upper()
        assert trigger["cardinality"] == "MANY"
        assert trigger["dataType"] == "BINARY"  # raw bytes, so bad UTF-8 reaches the dead-letter area intact
        assert trigger["topic"] == f"%{upper}_TOPIC%"
        assert trigger["consumerGroup"] == f"%{upper}_CONSUMER_GROUP%"
        assert trigger["brokerList"] == "%KAFKA_BROKER_LIST%"
        assert trigger["protocol"] == "NOTSET" and trigger["authenticationMode"] == "NOTSET"


def test_processing_functions_have_a_retry_policy(indexed: dict[str, dict[str, Any]]) -> None:
    for source in SOURCES:
        (policy,) = [s for s in indexed[f"process_{source}"]["settings"] if s["setting_name"] == "retry_policy"]
        assert policy["strategy"] == "exponential_backoff"
        assert int(policy["max_retry_count"]) >= 3


def test_one_timer_per_source_with_its_kafka_output(indexed: dict[str, dict[str, Any]]) -> None:
    for source in SOURCES:
        function = indexed[f"generate_{source}"]
        upper = source.upper()
        assert _binding(function, "timerTrigger")["schedule"] == f"%{upper}_GENERATOR_SCHEDULE%"
        output = _binding(function, "kafka")
        assert output["direction"] == "OUT"
        assert (output["topic"], output["brokerList"]) == (f"%{upper}_TOPIC%", "%KAFKA_BROKER_LIST%")


def test_binding_values_are_app_setting_names_never_literals(indexed: dict[str, dict[str, Any]]) -> None:
    for function in indexed.values():
        for binding in function["json"]["bindings"]:
            for key in ("topic", "brokerList", "consumerGroup", "username", "password", "schedule"):
                if key in binding:
                    assert binding[key].startswith("%") and binding[key].endswith("%"), (key, binding[key])


def test_an_unset_per_source_setting_is_written_as_its_default_except_secrets() -> None:
    """``func start`` resolves %NAME% only from app settings: a source without settings still indexes
    to bindings the host can run (a Datagen config dropped into sources/ needs no settings edit)."""
    without_sources = {k: v for k, v in EXAMPLE_SETTINGS.items() if not k.startswith(("ORDERS_", "SENSORS_"))}
    indexed = _index({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, settings=without_sources)
    trigger = _binding(indexed["process_orders"], "kafkaTrigger")
    assert (trigger["topic"], trigger["consumerGroup"]) == ("orders", "orders-processor")
    assert trigger["password"] == "%ORDERS_KAFKA_SASL_PASSWORD%", "a secret is never written as a value"
    assert _binding(indexed["generate_sensors"], "timerTrigger")["schedule"] == "*/10 * * * * *"
    assert _binding(indexed["compact_sensors"], "timerTrigger")["schedule"] == "0 */15 * * * *"
    assert _binding(indexed["generate_orders"], "kafka")["password"] == "%ORDERS_KAFKA_PRODUCER_SASL_PASSWORD%"
    assert _binding(indexed["process_mobile"], "kafkaTrigger")["topic"] == "%MOBILE_TOPIC%", "set: named"


def test_event_hubs_mode_uses_sasl_ssl_plain_with_a_password_per_source_and_role() -> None:
    indexed = _index({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    passwords = set()
    for name, function in indexed.items():
        for binding in function["json"]["bindings"]:
            if binding["type"] in ("kafka", "kafkaTrigger"):
                assert (binding["protocol"], binding["authenticationMode"]) == ("SASLSSL", "PLAIN"), name
                source = name.split("_", 1)[1].upper()
                role = "" if binding["type"] == "kafkaTrigger" else "PRODUCER_"
                password = f"%{source}_KAFKA_{role}SASL_PASSWORD%"
                assert (binding["username"], binding["password"]) == ("%KAFKA_SASL_USERNAME%", password), name
                passwords.add(binding["password"])
    assert len(passwords) == 2 * len(SOURCES), "one credential per source and role"


OAUTH = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
    "KAFKA_OAUTH_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    "KAFKA_OAUTH_CLIENT_SECRET": "not-a-real-secret",
    "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "KAFKA_OAUTH_SCOPE": "https://evhns-test.servicebus.windows.net/.default",
}


def test_oauthbearer_mode_produces_oidc_client_credentials_bindings() -> None:
    """The binding JSON the host gets in OAUTHBEARER mode: every credential is a %setting%, no password."""
    indexed = _index(OAUTH)
    kafka = [b for f in indexed.values() for b in f["json"]["bindings"] if b["type"] in ("kafka", "kafkaTrigger")]
    assert len(kafka) == 2 * len(SOURCES)
    for binding in kafka:
        assert binding["protocol"] == "SASLSSL"
        assert binding["authenticationMode"] == "OAUTHBEARER"  # the extension's BrokerAuthenticationMode.OAuthBearer
        assert binding["oAuthBearerMethod"] == "OIDC"
        assert binding["oAuthBearerClientId"] == "%KAFKA_OAUTH_CLIENT_ID%"
        assert binding["oAuthBearerClientSecret"] == "%KAFKA_OAUTH_CLIENT_SECRET%"
        assert binding["oAuthBearerTokenEndpointUrl"] == "%KAFKA_OAUTH_TOKEN_ENDPOINT_URL%"
        assert binding["oAuthBearerScope"] == "%KAFKA_OAUTH_SCOPE%"
        assert "password" not in binding and "username" not in binding
        assert "not-a-real-secret" not in json.dumps(binding)


def test_oauthbearer_without_its_settings_fails_at_indexing() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _index({**OAUTH, "KAFKA_OAUTH_SCOPE": ""})
    assert "KAFKA_OAUTH_SCOPE" in failure.value.stderr


def test_lag_threshold_is_read_per_source_at_indexing(indexed: dict[str, dict[str, Any]]) -> None:
    assert {_binding(indexed[f"process_{s}"], "kafkaTrigger")["lagThreshold"] for s in SOURCES} == {1000}
    tuned = _index({"SENSORS_LAG_THRESHOLD": "250"})
    assert _binding(tuned["process_sensors"], "kafkaTrigger")["lagThreshold"] == 250
    assert _binding(tuned["process_mobile"], "kafkaTrigger")["lagThreshold"] == 1000


class _TickContext:
    """What the worker passes as ``context``: only the retry context matters to the generator."""

    def __init__(self, retry_count: int) -> None:
        self.retry_context = SimpleNamespace(retry_count=retry_count, max_retry_count=-1)


def _user_function(name: str) -> Any:
    return app_functions()[name].get_user_function()


def test_generator_function_sends_keyed_events_and_honours_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "10")
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    for cached in (bindings.lake, bindings.source_settings):
        cached.cache_clear()
    from shared import settings as settings_module

    settings_module.current_settings.cache_clear()
    generate = _user_function("generate_sensors")

    def tick(retry_count: int = 0) -> list[dict[str, Any]]:
        out = OutputBinding()
        generate(timer=None, out=out, context=_TickContext(retry_count))
        return json.loads(out.value) if out.value else []

    first = tick()
    assert tick(retry_count=1) == first  # the send failed: the retry sends the same records again
    sent = [first, tick(), tick()]
    assert [len(batch) for batch in sent] == [7, 3, 0]
    assert all(item["Key"] and json.loads(item["Value"])["sensor_id"] == item["Key"] for item in sent[0])
    assert all(item["Headers"] == [] for item in sent[0])  # nothing traced, no trace header
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "20")
    bindings.source_settings.cache_clear()
    resent = tick()
    assert len(resent) == 7 and resent != first  # the 7 after the first 10; nothing re-sent after a clean end
    for cached in (bindings.lake, bindings.source_settings):
        cached.cache_clear()
    settings_module.current_settings.cache_clear()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-24T10:30:00.1234567Z", 1795516200123),
        ("2026-11-24T10:30:00+00:00", 1795516200000),
        ("", None),
        (None, None),
        ("garbage", None),
    ],
)
def test_kafka_record_timestamps_from_the_extension_parse(text: str | None, expected: int | None) -> None:
    assert bindings.parse_timestamp_ms(text) == expected


def test_kafka_event_becomes_a_core_record() -> None:
    event = func.KafkaEvent(
        body=b'{"a":1}', key="k1", partition=2, offset=99, topic="mobile", timestamp="2026-11-24T10:30:00Z"
    )
    record = bindings.to_record(event)
    assert (record.topic, record.partition, record.offset, record.key, record.value) == (
        "mobile",
        2,
        99,
        "k1",
        b'{"a":1}',
    )
    assert record.timestamp_ms == 1795516200000


def test_trace_context_of_the_current_span_becomes_a_header() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("generate") as span:
        headers = bindings.trace_headers()
    trace_id = format(span.get_span_context().trace_id, "032x")
    assert headers["traceparent"].split("-")[1] == trace_id
    assert bindings.trace_headers() == {}


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
    process = _user_function("process_sensors")
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
