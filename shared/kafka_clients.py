"""Kafka clients configured from app settings: the generators' producer and the operator tools'.

The generators produce here, not through the Kafka extension's output binding: the binding hands
each message to librdkafka and returns without waiting for delivery (``KafkaProducerEntity``
calls ``Produce``, not ``ProduceAsync``), so a failed delivery only logs and the tick would count as
sent; it also takes a Python worker's values only as strings. :func:`send` returns once the broker
acknowledged every record, and raises otherwise, so the timer's retry sends the tick again; a send that
raises leaves nothing queued behind it (its records would otherwise go out with every later send, one more
copy per failed attempt). PLAINTEXT locally, with no authentication; for Event Hubs, with
``KAFKA_PRODUCER_CREDENTIAL=managedidentity``, SASL OAUTHBEARER over SASL_SSL with an Entra ID token of the
app's identity (its *Azure Event Hubs Data Sender* role on each source's hub decides where it may send), so no
SAS key exists for it; or the ``KAFKA_OAUTH_*`` client credentials of the trigger (OAUTHBEARER, OIDC).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cache, partial
from typing import Any

from shared.errors import ConfigurationError, StreamingPocError, TransientError
from shared.records import ProducedRecord
from shared.settings import Settings, SourceSettings, eventhubs_namespace_host

SEND_TIMEOUT_SECONDS = 60.0  # one send, from its first record to the last acknowledgement
# librdkafka's message.timeout.ms, as a share of the send's: a record still unacknowledged then has failed (its
# delivery report says so) before the send gives up, so what a failed send leaves queued is the exception.
MESSAGE_TIMEOUT_SHARE = 0.75


class RecordTooLarge(StreamingPocError):
    """The broker, or librdkafka before it (``message.max.bytes``), refuses a record for its size: not transient,
    sending it again cannot succeed. ``index``: its place in the send; ``size``: its key, value and headers;
    ``alone``: the broker took every other record of the send (it is the only one the send failed)."""

    def __init__(self, message: str, *, index: int, size: int, alone: bool = False) -> None:
        super().__init__(message)
        self.index = index
        self.size = size
        self.alone = alone


def record_size(record: ProducedRecord) -> int:
    """Bytes of a record's key, value and headers (what a size limit counts, bar a few bytes of framing)."""
    key = len(record.key.encode()) if record.key is not None else 0
    return key + len(record.value) + sum(len(name.encode()) + len(value.encode()) for name, value in record.headers)


# librdkafka's ``oauth_cb``: called with ``sasl.oauthbearer.config``, returns a token and its expiry (epoch seconds).
TokenCallback = Callable[[str], tuple[str, float]]


def eventhubs_token_callback(namespace_host: str, credential: Any | None = None) -> TokenCallback:
    """An ``oauth_cb`` for the Kafka endpoint of Event Hubs namespace ``namespace_host``
    (``<namespace>.servicebus.windows.net``): Entra ID access tokens for ``https://<namespace_host>/.default``
    from ``credential``, by default ``DefaultAzureCredential`` (the managed identity in Azure, your login on a
    workstation). librdkafka calls it again before the token expires."""
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    scope = f"https://{namespace_host}/.default"

    def token(_config: str) -> tuple[str, float]:
        access = credential.get_token(scope)
        return access.token, float(access.expires_on)

    return token


@cache
def _identity_token_callback(namespace_host: str) -> TokenCallback:
    """One callback (and one credential, whose token cache it keeps) per namespace and worker: the producer
    configuration stays equal from tick to tick, so :func:`send` keeps reusing one producer."""
    return eventhubs_token_callback(namespace_host)


def client_config(settings: Settings, sasl_password: str, password_setting: str) -> dict[str, Any]:
    """Broker and security settings as the bindings have them; ``sasl_password`` (the app setting
    ``password_setting``) for SASL PLAIN, where an empty one is a ``ConfigurationError`` naming it."""
    config: dict[str, Any] = {"bootstrap.servers": settings.kafka_broker_list}
    if settings.kafka_security_protocol != "SASL_SSL":
        return config
    config["security.protocol"] = "sasl_ssl"
    if settings.kafka_sasl_mechanism == "OAUTHBEARER":
        return config | {
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": settings.kafka_oauth_client_id,
            "sasl.oauthbearer.client.secret": settings.kafka_oauth_client_secret.get_secret_value(),
            "sasl.oauthbearer.token.endpoint.url": settings.kafka_oauth_token_endpoint_url,
            "sasl.oauthbearer.scope": settings.kafka_oauth_scope,
        }
    if not sasl_password:
        raise ConfigurationError(f"{password_setting} is empty: SASL PLAIN needs an event hub rule's connection string")
    return config | {
        "sasl.mechanism": "PLAIN",
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": sasl_password,
    }


def producer_security(settings: Settings) -> dict[str, Any]:
    """Broker and security settings of the generators' producer.

    - ``KAFKA_PRODUCER_CREDENTIAL=managedidentity``: SASL OAUTHBEARER over SASL_SSL with the app's Entra ID
      identity (``oauth_cb``, token scope ``https://<namespace>/.default``), whatever the trigger uses; the
      settings model has checked that the broker is an Event Hubs namespace reached over SASL_SSL.
    - otherwise as the trigger connects: PLAINTEXT (local brokers) with nothing, or OAUTHBEARER with the
      ``KAFKA_OAUTH_*`` client credentials. SASL PLAIN has no producer credential (no send rule or key exists
      for it): a ``ConfigurationError`` says which setting to set.
    """
    if settings.kafka_producer_credential == "managedidentity":
        host = eventhubs_namespace_host(settings.kafka_broker_list)
        return {
            "bootstrap.servers": settings.kafka_broker_list,
            "security.protocol": "sasl_ssl",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": _identity_token_callback(host),
        }
    if settings.kafka_security_protocol == "SASL_SSL" and settings.kafka_sasl_mechanism == "PLAIN":
        raise ConfigurationError(
            "the generators' producer has no SASL PLAIN credential: with KAFKA_SECURITY_PROTOCOL=SASL_SSL and "
            "KAFKA_SASL_MECHANISM=PLAIN set KAFKA_PRODUCER_CREDENTIAL=managedidentity (Event Hubs, the app's "
            "identity with Azure Event Hubs Data Sender on the source's hub)"
        )
    return client_config(settings, "", "KAFKA_PRODUCER_CREDENTIAL")


def producer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings of the generators' producer (:func:`producer_security`), as the extension's output
    binding would have them, with a message timeout inside :data:`SEND_TIMEOUT_SECONDS` (librdkafka's default,
    300 s, would keep a failed send's records retrying long after the send gave up)."""
    return producer_security(settings) | {
        "linger.ms": 50,
        "batch.size": 1_048_576,
        "acks": "all",
        "enable.idempotence": False,  # as the output binding (the extension's default)
        "message.timeout.ms": max(1, int(SEND_TIMEOUT_SECONDS * 1000 * MESSAGE_TIMEOUT_SHARE)),
        **IDLE_CONNECTION_SETTINGS,
    }


# Azure's load balancers drop a connection idle for 240 s without telling either end; a producer kept across ticks
# of a sparse schedule would then find its connections dead and its send time out. Event Hubs' recommended
# librdkafka values (learn.microsoft.com/azure/event-hubs/apache-kafka-configurations): probe idle sockets, refresh
# metadata and close idle connections first. The Kafka extension (4.3.2) sets the first two for the triggers.
IDLE_CONNECTION_SETTINGS: dict[str, Any] = {
    "socket.keepalive.enable": True,
    "metadata.max.age.ms": 180_000,
    "connections.max.idle.ms": 180_000,
}

_producers: dict[str, Any] = {}
_lock = threading.Lock()


def send(config: dict[str, Any], topic: str, messages: Sequence[ProducedRecord]) -> None:
    """Produce ``messages`` to ``topic`` and wait until the broker acknowledged each; raises otherwise, within
    :data:`SEND_TIMEOUT_SECONDS`, a full local queue included.

    One producer per topic, configuration and worker, kept across ticks (so one source's failed send never
    purges another's records). A send that raises first purges what it left in the producer, queued and in
    flight: nothing of it is sent later, or retried by librdkafka alongside the retry's copy. A record that was
    in flight then (or whose acknowledgement was lost) may still have reached the broker: one copy per failed
    attempt at most, besides librdkafka's own retries of a request whose answer was lost (the producer is not
    idempotent). A record refused for its size, by librdkafka (``message.max.bytes``) or by the broker, raises
    :class:`RecordTooLarge` (not transient) naming it and its size, rather than a ``TransientError`` that would have
    the retry send it again and again.
    """
    from confluent_kafka import KafkaError, KafkaException, Producer

    identity = repr((topic, sorted(config.items())))
    with _lock:
        producer = _producers.get(identity)
        if producer is None:
            producer = _producers[identity] = Producer(config)
    deadline = time.monotonic() + SEND_TIMEOUT_SECONDS
    failures: list[str] = []
    too_large: list[RecordTooLarge] = []

    def delivered(index: int, error: Any, _message: Any) -> None:
        if error is None:
            return
        if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:  # the broker's MESSAGE_TOO_LARGE
            too_large.append(_too_large(topic, index, messages[index], str(error)))
        failures.append(str(error))

    try:
        for index, message in enumerate(messages):
            while True:
                try:
                    producer.produce(
                        topic,
                        message.value,
                        message.key,
                        headers=list(message.headers),
                        on_delivery=partial(delivered, index),
                    )
                    break
                except BufferError:  # the local queue is full: wait for deliveries, not past the deadline
                    if time.monotonic() >= deadline:
                        raise TransientError(
                            f"{topic}: the producer's queue stayed full for {SEND_TIMEOUT_SECONDS:g} s"
                        ) from None
                    producer.poll(0.1)
                except KafkaException as error:  # refused before it is queued: over message.max.bytes, or a topic
                    # the client knows is missing or not allowed (a reused producer remembers), named here
                    if error.args and error.args[0].code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        raise _too_large(topic, index, message, str(error.args[0].str())) from error
                    raise TransientError(f"{topic}: the producer refused record {index}: {error}") from error
        remaining = producer.flush(max(0.0, deadline - time.monotonic()))
    except BaseException:
        _drop_queued(producer)
        raise
    if remaining or failures:
        detail = failures[0] if failures else "timed out"
        if remaining:
            _drop_queued(producer)
        if too_large:
            first = min(too_large, key=lambda error: error.index)
            first.alone = not remaining and len(failures) == 1
            raise first
        raise TransientError(
            f"{topic}: {len(failures)} failed, {remaining} unacknowledged of {len(messages)}: {detail}"
        )


def _too_large(topic: str, index: int, record: ProducedRecord, why: str) -> RecordTooLarge:
    size = record_size(record)
    return RecordTooLarge(
        f"{topic}: record {index} of the send, {size:,} bytes of key, value and headers, is too large to send "
        f"({why}); sending it again cannot succeed",
        index=index,
        size=size,
    )


def _drop_queued(producer: Any) -> None:
    """Purge every record left in ``producer``, queued or in flight, and serve their delivery reports."""
    producer.purge(in_queue=True, in_flight=True, blocking=True)
    producer.flush(0)


def close_producers(timeout: float = 10.0) -> None:
    """Flush and close every producer :func:`send` keeps, so none outlives its broker (the local host calls this
    before it stops an embedded broker); the next ``send`` creates a new one."""
    with _lock:
        producers = list(_producers.values())
        _producers.clear()
    for producer in producers:
        if producer.flush(timeout):  # left by a send that raised (its tick sends them again): drop them
            producer.purge()
            producer.flush(0)
        producer.close()  # nothing queued now: close() flushes without a timeout, so it would wait for ever


# One re-read of a batch's records (``read_values``), once per batch and worker (``functions.bindings``): with one
# full retry cycle of the lake's and the registry's calls it stays within maxPollIntervalMs (test_poll_interval.py).
REREAD_TIMEOUT_SECONDS = 30.0


def consumer_config(settings: Settings, source: SourceSettings, password_setting: str) -> dict[str, Any]:
    """librdkafka settings of a reader with the source's trigger credentials that never commits (so it leaves no
    offsets behind and joins no group: it is assigned partitions, never subscribed)."""
    password = source.kafka_sasl_password.get_secret_value()
    return client_config(settings, password, password_setting) | {
        "group.id": f"{source.consumer_group}-values",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": True,
        "auto.offset.reset": "earliest",
        **IDLE_CONNECTION_SETTINGS,
    }


def read_values(
    config: dict[str, Any], topic: str, offsets: Mapping[int, Collection[int]], timeout: float = REREAD_TIMEOUT_SECONDS
) -> dict[tuple[int, int], bytes | None]:
    """The value of each record of ``topic`` at ``offsets`` (partition -> offsets), read from the broker:
    ``None`` for a record with no value (a tombstone). A record the topic no longer holds (retention deleted it
    since, or the topic was recreated shorter) is absent from the answer. Raises ``TransientError`` when the
    broker does not give every partition up to its highest offset within ``timeout``."""
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    wanted = {(partition, offset) for partition, members in offsets.items() for offset in members}
    highest = {partition: max(members) for partition, members in offsets.items() if members}
    found: dict[tuple[int, int], bytes | None] = {}
    consumer = Consumer(config)
    try:
        consumer.assign([TopicPartition(topic, partition, min(offsets[partition])) for partition in highest])
        deadline = time.monotonic() + timeout
        while highest:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TransientError(
                    f"{topic}: re-reading values timed out after {timeout:g} s, partitions {sorted(highest)} unread"
                )
            message = consumer.poll(min(left, 1.0))
            if message is None:
                continue
            partition, offset, error = int(message.partition() or 0), int(message.offset() or 0), message.error()
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                raise TransientError(f"{topic}: re-reading values failed: {error}")
            if error is None and (partition, offset) in wanted:
                found[partition, offset] = message.value()
            if partition in highest and (error is not None or offset >= highest[partition]):
                del highest[partition]  # read up to its highest wanted offset, or to its end
                consumer.incremental_unassign([TopicPartition(topic, partition)])
        return found
    finally:
        consumer.close()
