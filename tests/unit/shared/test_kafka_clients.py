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
    }


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
