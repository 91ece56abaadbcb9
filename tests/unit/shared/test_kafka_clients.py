"""Kafka clients from app settings: the generators' producer uses the bindings' credentials."""

from __future__ import annotations

import pytest


def test_the_generators_producer_uses_the_bindings_credentials() -> None:
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings, load_source_settings

    plain = load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    sender = load_source_settings(
        "orders", {"ORDERS_KAFKA_PRODUCER_SASL_PASSWORD": "Endpoint=sb://x/;SharedAccessKey=k"}
    )
    config = producer_config(plain, "orders", sender)
    assert (config["security.protocol"], config["sasl.mechanism"], config["sasl.username"]) == (
        "sasl_ssl",
        "PLAIN",
        "$ConnectionString",
    )
    assert config["sasl.password"].endswith("SharedAccessKey=k"), "the send-only rule"
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
    config = producer_config(oauth, "orders", sender)
    assert (config["sasl.mechanism"], config["sasl.oauthbearer.method"]) == ("OAUTHBEARER", "oidc")
    assert "sasl.password" not in config
    assert producer_config(load_settings({}), "orders", sender) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "linger.ms": 50,
        "batch.size": 1_048_576,
        "acks": "all",
        "enable.idempotence": False,
        "message.timeout.ms": 45_000,
    }


def test_a_record_times_out_in_librdkafka_before_its_send_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """librdkafka's default message timeout (300 s) outlived a failed send: its records went on retrying."""
    from shared import kafka_clients
    from shared.settings import load_settings, load_source_settings

    for seconds in (60.0, 1.0):
        monkeypatch.setattr(kafka_clients, "SEND_TIMEOUT_SECONDS", seconds)
        config = kafka_clients.producer_config(load_settings({}), "orders", load_source_settings("orders", {}))
        assert config["linger.ms"] < config["message.timeout.ms"] < seconds * 1000


def test_sasl_plain_with_an_empty_password_fails_naming_the_setting() -> None:
    import pytest

    from shared.errors import ConfigurationError
    from shared.kafka_clients import producer_config
    from shared.settings import load_settings, load_source_settings

    plain = load_settings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    with pytest.raises(ConfigurationError, match="ORDERS_KAFKA_PRODUCER_SASL_PASSWORD is empty"):
        producer_config(plain, "orders", load_source_settings("orders", {}))


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
        assert len(producer) == 0, f"{len(producer)} records of the failed send still queued"
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
        assert len(producer) == 0  # what it had queued is dropped too
    finally:
        kafka_clients.close_producers(timeout=0.5)
