"""Kafka clients from app settings: the generators' producer sends with the app's identity in Azure, no key."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

EVENTHUBS = {
    "KAFKA_BROKER_LIST": "evhns-x.servicebus.windows.net:9093",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "PLAIN",  # the triggers' (Listen rules); the producer goes by its identity
    "KAFKA_SASL_USERNAME": "$ConnectionString",
    "KAFKA_PRODUCER_CREDENTIAL": "managedidentity",
}


class _Credential:
    """A stand-in for DefaultAzureCredential that records the scopes it was asked for."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> Any:
        self.scopes.extend(scopes)
        return SimpleNamespace(token="entra-token", expires_on=4_102_444_800)


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Credential]:
    """DefaultAzureCredential replaced (nothing asks Entra ID), and the worker's cached token callbacks cleared."""
    import azure.identity

    from shared import kafka_clients

    fake = _Credential()
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: fake)
    kafka_clients._identity_token_callback.cache_clear()
    yield fake
    kafka_clients._identity_token_callback.cache_clear()


def test_in_azure_the_generators_producer_sends_with_the_apps_identity_and_no_password(credential: _Credential) -> None:
    """SASL OAUTHBEARER over SASL_SSL with an oauth_cb: an Entra ID token for the namespace, no key anywhere."""
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    config = producer_config(load_settings(EVENTHUBS | {"ORDERS_KAFKA_SASL_PASSWORD": "Endpoint=sb://listen"}))
    assert (config["bootstrap.servers"], config["security.protocol"], config["sasl.mechanism"]) == (
        "evhns-x.servicebus.windows.net:9093",
        "sasl_ssl",
        "OAUTHBEARER",
    )
    assert not [key for key in config if key in ("sasl.username", "sasl.password") or "secret" in key]
    assert not [key for key in config if key.startswith("sasl.oauthbearer.")], "no OIDC client credentials"
    assert not [value for value in config.values() if "SharedAccessKey" in str(value) or "sb://" in str(value)]
    assert config["oauth_cb"]("") == ("entra-token", 4_102_444_800.0)
    assert credential.scopes == ["https://evhns-x.servicebus.windows.net/.default"]


def test_the_producer_keeps_its_connections_alive_past_azures_idle_timeout(credential: _Credential) -> None:
    """Azure drops a connection idle for 240 s silently: a producer kept across the ticks of a sparse schedule found
    its connections dead. Event Hubs' recommended values: keepalive on, metadata and idle closes under 240 s."""
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    for config in (producer_config(load_settings(EVENTHUBS)), producer_config(load_settings({}))):
        assert config["socket.keepalive.enable"] is True
        assert 0 < config["metadata.max.age.ms"] < 240_000 and 0 < config["connections.max.idle.ms"] < 240_000


def test_the_identitys_producer_config_is_the_same_every_tick(credential: _Credential) -> None:
    """send() keeps one producer per configuration: a new callback per tick would build a producer per tick."""
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    settings = load_settings(EVENTHUBS)
    first, second = producer_config(settings), producer_config(settings)
    assert first["oauth_cb"] is second["oauth_cb"] and repr(sorted(first.items())) == repr(sorted(second.items()))


def test_librdkafka_takes_the_identity_config_and_asks_the_callback_for_a_token(credential: _Credential) -> None:
    """The producer built from it (its broker a closed loopback port) serves oauth_cb: the token's scope is the
    namespace's, with SASL OAUTHBEARER and no sasl.oauthbearer.method=oidc (that would need client credentials)."""
    import confluent_kafka

    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    producer = confluent_kafka.Producer(
        producer_config(load_settings(EVENTHUBS)) | {"bootstrap.servers": "127.0.0.1:1"}
    )
    try:
        for _ in range(20):
            producer.poll(0.1)
            if credential.scopes:
                break
        assert credential.scopes[:1] == ["https://evhns-x.servicebus.windows.net/.default"]
    finally:
        producer.purge()
        producer.flush(0)


def test_locally_the_generators_producer_is_plaintext_with_no_authentication() -> None:
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    assert producer_config(load_settings({})) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "linger.ms": 50,
        "batch.size": 1_048_576,
        "acks": "all",
        "enable.idempotence": False,
        "message.timeout.ms": 45_000,
        "socket.keepalive.enable": True,
        "metadata.max.age.ms": 180_000,
        "connections.max.idle.ms": 180_000,
    }


def test_with_oidc_triggers_the_producer_uses_the_same_client_credentials() -> None:
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

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
    config = producer_config(oauth)
    assert (config["sasl.mechanism"], config["sasl.oauthbearer.method"]) == ("OAUTHBEARER", "oidc")
    assert "sasl.password" not in config and "oauth_cb" not in config


def test_a_record_times_out_in_librdkafka_before_its_send_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's default message timeout (300 s) outlived a failed send: its records went on retrying."""
    from shared import kafka_clients
    from shared.settings import load_settings

    for seconds in (60.0, 1.0):
        monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", seconds)
        config = kafka_clients.producer_config(load_settings({}))
        assert config["linger.ms"] < config["message.timeout.ms"] < seconds * 1000


def test_sasl_plain_without_the_identity_fails_naming_the_setting_to_set() -> None:
    """No send rule or key exists for the producer any more: SASL PLAIN alone cannot produce."""
    from shared.errors import ConfigurationError
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings

    plain = load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    with pytest.raises(ConfigurationError, match="set KAFKA_PRODUCER_CREDENTIAL=managedidentity"):
        producer_config(plain)


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "needs KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"}, "Event Hubs namespace"),
    ],
    ids=["plaintext", "not an Event Hubs broker"],
)
def test_the_identity_with_settings_it_cannot_work_with_is_a_settings_error(
    environ: dict[str, str], message: str
) -> None:
    from shared.errors import ConfigurationError
    from shared.settings import load_settings

    with pytest.raises(ConfigurationError, match=message):
        load_settings({"KAFKA_PRODUCER_CREDENTIAL": "managedidentity", "KAFKA_BROKER_LIST": "127.0.0.1:9092"} | environ)


def test_reconcile_uses_the_same_token_callback(credential: _Credential) -> None:
    """tools.reconcile's --eventhubs-namespace connects with shared.kafka_clients' callback, not a copy of it."""
    from shared.settings import load_settings
    from tools.reconcile import broker_config

    config = broker_config(load_settings({}), "orders", {}, "evhns-y")
    assert config["oauth_cb"].__module__ == "shared.kafka_clients"
    assert config["oauth_cb"]("")[0] == "entra-token"
    assert credential.scopes == ["https://evhns-y.servicebus.windows.net/.default"]


def test_closing_the_producers_does_not_wait_for_records_no_broker_will_take(monkeypatch: pytest.MonkeyPatch) -> None:
    """A send that raised leaves its records queued in the cached producer; Producer.close() flushes them with no
    timeout, so closing it as it was waited for ever (it hung the suite once)."""
    import time

    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 0.5)
    config = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 600_000}  # nothing listens there
    with pytest.raises(TransientError):
        kafka_clients.send(config, "orders", [ProducedRecord("k", b"{}", ())])
    started = time.monotonic()
    kafka_clients.close_producers(timeout=0.5)
    assert time.monotonic() - started < 5 and not kafka_clients._producers


def test_a_send_that_raises_leaves_nothing_queued_behind_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its records would go out with a later send (the retry's), one more copy per failed attempt: purged."""
    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    config = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 600_000}  # nothing listens there
    try:
        with pytest.raises(TransientError, match="3 unacknowledged of 3"):
            kafka_clients.send(config, "orders", [ProducedRecord(str(i), b"{}", ()) for i in range(3)])
        (producer,) = kafka_clients._producers.values()
        assert _drained(producer) == 0, "records of the failed send still queued"
    finally:
        kafka_clients.close_producers(timeout=0.5)


def test_a_send_gives_up_within_its_timeout_when_the_producers_queue_stays_full(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tick larger than librdkafka's queue (100,000 records; 10 here) waited for room with no deadline."""
    import time

    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 1.0)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    config = {
        "bootstrap.servers": "127.0.0.1:1",
        "queue.buffering.max.messages": 10,
        "message.timeout.ms": 20_000,  # room in the queue only once these time out
    }
    started = time.monotonic()
    try:
        with pytest.raises(TransientError, match="queue stayed full"):
            kafka_clients.send(config, "orders", [ProducedRecord(str(i), b"{}", ()) for i in range(11)])
        assert time.monotonic() - started < 5
        (producer,) = kafka_clients._producers.values()
        assert _drained(producer) == 0  # what it had queued is dropped too
    finally:
        kafka_clients.close_producers(timeout=0.5)


def test_a_record_over_the_producers_message_max_bytes_fails_naming_it_and_its_size_not_as_transient(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """librdkafka refuses it before queueing it; the KafkaException went up as it was, and the timer retried it
    forever."""
    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", 0.5)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    config = {"bootstrap.servers": "127.0.0.1:1", "message.max.bytes": 1_000}  # nothing listens there
    records = [ProducedRecord("k", b"{}", ()), ProducedRecord("key", b"x" * 2_000, (("traceparent", "00-ab"),))]
    try:
        with pytest.raises(kafka_clients.RecordTooLarge, match="orders: record 1 of the send, 2,019 bytes") as raised:
            kafka_clients.send(config, "orders", records)
        assert not isinstance(raised.value, TransientError) and (raised.value.index, raised.value.size) == (1, 2_019)
        (producer,) = kafka_clients._producers.values()
        assert _drained(producer) == 0  # the record before it is dropped too
    finally:
        kafka_clients.close_producers(timeout=0.5)


class _RefusingProducer:
    """confluent_kafka.Producer against a broker that refuses record ``refused`` for its size (MESSAGE_TOO_LARGE,
    e.g. a topic's max.message.bytes below the record) and acknowledges every other."""

    refused = 1

    def __init__(self, _config: dict[str, Any]) -> None:
        self.reports: list[Any] = []

    def produce(self, _topic: str, value: bytes, key: str, headers: Any, on_delivery: Any) -> None:
        self.reports.append(on_delivery)

    def flush(self, _timeout: float = 0) -> int:
        from confluent_kafka import KafkaError

        for index, report in enumerate(self.reports):
            report(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if index == self.refused else None, None)
        self.reports.clear()
        return 0


def test_a_record_the_broker_refuses_for_its_size_fails_naming_it_and_its_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """It failed as a TransientError ("1 failed, 0 unacknowledged"), which the timer's retry sends again, forever."""
    import confluent_kafka

    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(confluent_kafka, "Producer", _RefusingProducer)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    records = [ProducedRecord(str(i), b"x" * (10 + i), ()) for i in range(3)]
    with pytest.raises(kafka_clients.RecordTooLarge, match="clicks: record 1 of the send, 12 bytes") as raised:
        kafka_clients.send({"bootstrap.servers": "fake"}, "clicks", records)
    assert not isinstance(raised.value, TransientError) and (raised.value.index, raised.value.size) == (1, 12)
    assert "sending it again cannot succeed" in str(raised.value)


def _drained(producer: Any, seconds: float = 5.0) -> int:
    """What the producer still holds once it served its events: ``len`` also counts the connection errors an
    unreachable broker keeps reporting, which come in at any moment; a record left queued never leaves."""
    import time

    deadline = time.monotonic() + seconds
    while len(producer) and time.monotonic() < deadline:
        producer.poll(0.05)
    return len(producer)


def test_a_record_refused_for_its_size_says_whether_the_broker_took_every_other(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``alone``: what lets the generator's retries send that record alone (review 15)."""
    import confluent_kafka

    from shared import kafka_clients
    from shared.records import ProducedRecord

    monkeypatch.setattr(confluent_kafka, "Producer", _RefusingProducer)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    records = [ProducedRecord(str(i), b"x", ()) for i in range(3)]
    with pytest.raises(kafka_clients.RecordTooLarge) as raised:
        kafka_clients.send({"bootstrap.servers": "fake"}, "clicks", records)
    assert raised.value.alone and raised.value.index == 1


class _TopicRefusingProducer(_RefusingProducer):
    """A reused producer that remembers the topic as missing: ``produce`` raises at once (review 15)."""

    def produce(self, _topic: str, value: bytes, key: str, headers: Any, on_delivery: Any) -> None:
        from confluent_kafka import KafkaError, KafkaException

        raise KafkaException(KafkaError(KafkaError._UNKNOWN_TOPIC))

    def purge(self, **_: Any) -> None:
        self.reports.clear()


def test_a_record_the_producer_refuses_for_another_reason_is_transient_and_names_the_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It went up as a bare cimpl.KafkaException naming neither topic nor source."""
    import confluent_kafka

    from shared import kafka_clients
    from shared.errors import TransientError
    from shared.records import ProducedRecord

    monkeypatch.setattr(confluent_kafka, "Producer", _TopicRefusingProducer)
    monkeypatch.setattr(kafka_clients, "_producers", {})
    with pytest.raises(TransientError, match="clicks: the producer refused record 0"):
        kafka_clients.send({"bootstrap.servers": "fake"}, "clicks", [ProducedRecord("k", b"x", ())])
