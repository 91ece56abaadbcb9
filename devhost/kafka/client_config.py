"""librdkafka settings for a Kafka binding, resolved the way the Kafka extension resolves them."""

from __future__ import annotations

import logging
from typing import Any

from devhost.runtime.host_config import HostConfig, HostConfigError

RDKAFKA_LOG = logging.getLogger("devhost.kafka.rdkafka")
SESSION_TIMEOUT_MS = 10_000  # the extension's SessionTimeoutMs default; librdkafka wants max.poll.interval.ms >= it
_PROTOCOLS = {
    "NOTSET": None,
    "PLAINTEXT": "plaintext",
    "SSL": "ssl",
    "SASLPLAINTEXT": "sasl_plaintext",
    "SASLSSL": "sasl_ssl",
}
_MECHANISMS = {
    "NOTSET": None,
    "PLAIN": "PLAIN",
    "SCRAMSHA256": "SCRAM-SHA-256",
    "SCRAMSHA512": "SCRAM-SHA-512",
    "OAUTHBEARER": "OAUTHBEARER",
}
# The extension's OAuthBearer options and the librdkafka properties it sets from them.
_OAUTH = {
    "oAuthBearerClientId": "sasl.oauthbearer.client.id",
    "oAuthBearerClientSecret": "sasl.oauthbearer.client.secret",
    "oAuthBearerScope": "sasl.oauthbearer.scope",
    "oAuthBearerTokenEndpointUrl": "sasl.oauthbearer.token.endpoint.url",
    "oAuthBearerExtensions": "sasl.oauthbearer.extensions",
}


def client_config(binding: dict[str, Any], config: HostConfig) -> dict[str, Any]:
    """Bootstrap servers and security settings shared by consumers, producers and admin clients."""
    settings: dict[str, Any] = {"bootstrap.servers": config.resolve(binding["brokerList"]), "logger": RDKAFKA_LOG}
    protocol = _PROTOCOLS.get(str(binding.get("protocol", "NOTSET")).upper())
    mechanism = _MECHANISMS.get(str(binding.get("authenticationMode", "NOTSET")).upper())
    if protocol:
        settings["security.protocol"] = protocol
    if mechanism == "OAUTHBEARER":
        settings["sasl.mechanism"] = mechanism
        if str(binding.get("oAuthBearerMethod", "DEFAULT")).upper() == "OIDC":
            settings["sasl.oauthbearer.method"] = "oidc"
        for key, name in _OAUTH.items():
            if binding.get(key):
                settings[name] = config.resolve(str(binding[key]))
    elif mechanism:
        settings["sasl.mechanism"] = mechanism
        settings["sasl.username"] = config.resolve(binding.get("username", ""))
        settings["sasl.password"] = config.resolve(binding.get("password", ""))
    return settings


def consumer_config(binding: dict[str, Any], config: HostConfig) -> dict[str, Any]:
    """The extension's consumer: offsets stored by the host after each invocation, committed on an interval.

    ``maxPollIntervalMs`` is the longest a batch may be retried in place before the consumer is
    put out of its group (once the executor channel is full the listener waits and does not poll,
    as in the extension).
    """
    kafka = config.kafka
    if kafka.max_poll_interval_ms < SESSION_TIMEOUT_MS:
        raise HostConfigError(
            f"host.json extensions.kafka.maxPollIntervalMs is {kafka.max_poll_interval_ms} ms; librdkafka needs at "
            f"least the session timeout, {SESSION_TIMEOUT_MS} ms"
        )
    return client_config(binding, config) | {
        "group.id": config.resolve(binding["consumerGroup"]),
        "auto.offset.reset": kafka.auto_offset_reset,
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": kafka.auto_commit_interval_ms,
        "max.poll.interval.ms": kafka.max_poll_interval_ms,
        "session.timeout.ms": SESSION_TIMEOUT_MS,  # heartbeat.interval.ms: librdkafka's 3 s, as the extension leaves it
        "statistics.interval.ms": 1_000,
    }


def producer_config(binding: dict[str, Any], config: HostConfig) -> dict[str, Any]:
    """A producer that sends large record batches (Tansu and Event Hubs both reward them)."""
    return client_config(binding, config) | {
        "linger.ms": max(50, int(binding.get("lingerMs", 5))),
        "batch.size": 1_048_576,
        "compression.type": "lz4",
        "acks": "all",
        "enable.idempotence": bool(binding.get("enableIdempotence", False)),
        "message.timeout.ms": int(binding.get("messageTimeoutMs", 300_000)),
    }
