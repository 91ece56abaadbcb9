"""Send a source's dead letters that now pass the whole path back to its topic, once each; re-apply refused state.

python -m tools.redrive orders --dry-run                 # what would go, nothing sent
python -m tools.redrive orders --reason schema --since 2026-11-27T00:00:00Z
python -m tools.redrive orders --eventhubs-namespace evhns-spoc-x1y2.servicebus.windows.net
python -m tools.redrive clickstream --functions-url https://func-spoc-x1y2.azurewebsites.net  # + DURABLE_SYSTEM_KEY

``entity_rejected`` dead letters are never produced again (their records are in raw/): their state
update is re-applied from the raw row through the Durable entity HTTP API of the function app
(``--functions-url``; default the local host, http://127.0.0.1:7071). In Azure that API needs the
host's ``durabletask_extension`` system key, read from ``DURABLE_SYSTEM_KEY``:
``az functionapp keys list -g <resource group> -n <function app> --query systemKeys.durabletask_extension -o tsv``.

Settings (the lake, the broker, the source's topic) come from ``local.settings.json``'s Values
(``--settings``), overridden by the environment, exactly as the app reads them. Locally the
records go through Kafka (``KAFKA_BROKER_LIST``); with ``--eventhubs-namespace`` (or when
``KAFKA_BROKER_LIST`` is an Event Hubs endpoint) through ``azure-eventhub`` with
``DefaultAzureCredential``: the operator needs the Azure Event Hubs Data Sender role, read/write on the lake and,
for an Avro source, Schema Registry Reader (Terraform: ``redrive_operator_principal_id``). The Event Hubs client
does not retry a send (a retry after an append whose answer was lost would append it twice): a batch whose send
failed, whatever the error, is unconfirmed and never sent again; one never handed to the service goes with a later
run. Ends with a summary.

One redrive of a source runs at a time: while another holds the source's lease (``_redrive/<source>/lease.json``)
this one sends nothing and exits with 3. A run that crashed holds it for at most five minutes.
Exit codes: 0 done, every letter that passes sent; 1 some sends or signals failed (unconfirmed sends are not repeated:
the summary says which counts) or some letters were not sent (refused by the broker, or too large for a batch: a later
run tries them again), or an Avro source's schema registry did not answer (one line; run again once it answers); 2 bad
arguments or settings (one line naming the setting); 3 another redrive is running; 4 the lake or a lake file could not
be read (a dead-letter file is left out and named, the rest go; a letter whose record may be in a raw file that cannot
be read is not sent, named as "unknown"; an unreadable redrive log stops the run before anything is sent; a lake that
cannot be reached stops the run, named in one line: run again once it answers, the redrive log keeps a send from being
repeated). Dead letters of a landing still pending and unfinished are not sent (named as "pending landing"): a later
run sends them once it is counted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from shared.dead_letters import REASONS
from shared.errors import LakeError, LakeUnavailable, RedriveInProgress, RegistryUnavailable, UnreadableLakeFile
from shared.kafka_clients import producer_security
from shared.lake import open_lake
from shared.redrive import Delivery, EntitySignaller, OutgoingRedrive, RedriveSender, RedriveTarget, redrive
from shared.schema_registry.decoder import decoder_for
from shared.settings import Settings, SourceSettings, is_eventhubs_host, load_settings, load_source_settings
from shared.source_model import MAX_TIMESTAMP_MS
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.bucket_counts import state_bucket_settings
from tools.cli import (
    MAX_ERROR_TEXT,
    QUIET,
    broker_address,
    lake_target,
    one_line,
    parse_since,
    secure_url,
    tool_environment,
    tool_main,
    topic_problem,
)

PROG = "python -m tools.redrive"
EVENTHUBS_SUFFIX = ".servicebus.windows.net"
LOCAL_FUNCTIONS_URL = "http://127.0.0.1:7071"
SYSTEM_KEY_SETTING = "DURABLE_SYSTEM_KEY"
EXIT_SEND_FAILED = 1
EXIT_ANOTHER_REDRIVE_RUNNING = 3  # 2 is argparse's, for bad arguments
EXIT_UNREADABLE_FILE = 4


class DurableHttpSignaller:
    """Signals entities through the Durable extension's HTTP API (``POST .../entities/{name}/{key}?op=``): 202 is
    accepted. Entity keys go as the app sends them (bucket keys, ``shared.state.buckets``), so the same entity is
    reached."""

    def __init__(self, base_url: str, system_key: str = "", timeout: float = 30.0) -> None:
        self.base_url = secure_url(base_url, "--functions-url").rstrip("/")
        self.system_key = system_key
        self.timeout = timeout

    def signal(self, signals: Sequence[Signal]) -> list[bool]:
        import http.client
        import urllib.request
        from urllib.parse import quote, urlencode

        accepted = []
        for signal in signals:
            query = {"op": signal.operation} | ({"code": self.system_key} if self.system_key else {})
            path = f"{quote(signal.entity, safe='')}/{quote(signal.key, safe='')}"
            request = urllib.request.Request(
                f"{self.base_url}/runtime/webhooks/durabletask/entities/{path}?{urlencode(query)}",
                data=json.dumps(signal.payload).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    accepted.append(response.status == 202)
            except (OSError, http.client.HTTPException) as error:  # URLError, a reset, a dropped answer
                print(f"signal {signal.entity}/{signal.key} failed: {error}", file=sys.stderr)
                accepted.append(False)
        return accepted


class KafkaRedriveSender:
    """confluent-kafka, as the local host produces: waits for every acknowledgement."""

    def __init__(self, settings: Settings, source: SourceSettings, timeout: float = 60.0) -> None:
        # as the generators' producer connects (an Event Hubs broker goes through EventHubsRedriveSender instead)
        self.config: dict[str, Any] = producer_security(settings) | {"enable.idempotence": True}
        self.timeout = timeout

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[Delivery]:
        from confluent_kafka import KafkaException, Producer

        try:
            producer = Producer(self.config | {"message.timeout.ms": int(self.timeout * 1000), "logger": QUIET})
        except KafkaException as error:  # a setting the client refuses: nothing can have left
            print(f"nothing sent: {error}", file=sys.stderr)
            return [Delivery.NOT_SENT] * len(messages)
        if not self._reaches(producer, topic):  # nothing can have left: every record is sent again next run
            return [Delivery.NOT_SENT] * len(messages)
        outcomes = [Delivery.UNKNOWN] * len(messages)

        def on_delivery(index: int) -> Any:
            def callback(error: Any, _message: Any) -> None:
                outcomes[index] = Delivery.ACKNOWLEDGED if error is None else _kafka_delivery(error)

            return callback

        for index, message in enumerate(messages):
            outcomes[index] = self._produce(producer, topic, message, on_delivery(index))
            producer.poll(0)
        producer.flush(self.timeout + 5)  # past message.timeout.ms: every record has its delivery report
        return outcomes

    def _reaches(self, producer: Any, topic: str) -> bool:
        """Whether the broker answers with ``topic``'s metadata (else nothing is produced and no send is in doubt)."""
        problem = topic_problem(producer, topic, min(self.timeout, 10.0), str(self.config.get("bootstrap.servers", "")))
        if problem is not None:
            print(f"nothing sent: {problem}", file=sys.stderr)
        return problem is None

    def _produce(self, producer: Any, topic: str, message: OutgoingRedrive, callback: Any) -> Delivery:
        """``UNKNOWN`` until the broker answers (the callback then tells); ``NOT_SENT`` when the record never
        left this process (too large, an unknown topic, the local queue still full after draining it)."""
        from confluent_kafka import KafkaException

        try:
            key = None if message.key is None else message.key.encode()
        except UnicodeEncodeError:  # a lone surrogate in a foreign row's key: no broker takes it
            return Delivery.NOT_SENT
        # The record's own Kafka timestamp, not the redrive's: lineage checks its event time against it, and one
        # older than 7 days would otherwise be filed in the redrive's hour (0: a timestamp no date can hold, now).
        stamp = message.entry.timestamp_ms
        timestamp = stamp if stamp is not None and 0 < stamp <= MAX_TIMESTAMP_MS else 0
        for _ in range(2):
            try:
                producer.produce(
                    topic, message.value, key, headers=list(message.headers), timestamp=timestamp, on_delivery=callback
                )
                return Delivery.UNKNOWN
            except BufferError:
                producer.flush(self.timeout)
            except (KafkaException, TypeError, ValueError):  # refused before it was queued
                return Delivery.NOT_SENT
        return Delivery.NOT_SENT


# Broker and client errors that mean the record was not appended; anything else (a timeout above all) may
# have been, so it is never sent again.
_NOT_APPENDED = frozenset(
    {
        "MSG_SIZE_TOO_LARGE",
        "_MSG_SIZE_TOO_LARGE",
        "RECORD_LIST_TOO_LARGE",
        "INVALID_RECORD",
        "CORRUPT_MESSAGE",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_TOPIC",
        "_UNKNOWN_PARTITION",
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "_INVALID_ARG",
        "INVALID_TIMESTAMP",  # a redriven record keeps its time: a topic that refuses old ones refuses it whole
        "POLICY_VIOLATION",
    }
)


def _kafka_delivery(error: Any) -> Delivery:
    return Delivery.NOT_SENT if error.name() in _NOT_APPENDED else Delivery.UNKNOWN


class EventHubsRedriveSender:
    """azure-eventhub with DefaultAzureCredential; one batch per partition key keeps a key's records together."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace if "." in namespace else f"{namespace}{EVENTHUBS_SUFFIX}"

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[Delivery]:
        """Always the outcomes: a batch handed to ``send_batch`` is acknowledged or unknown (``_send_batch``); once
        making a batch fails (no login, the service busy or unreachable) nothing more is tried, and every message
        never handed to ``send_batch`` is not sent (a later run sends it)."""
        from azure.core.exceptions import AzureError
        from azure.eventhub import EventHubProducerClient
        from azure.eventhub.exceptions import EventHubError
        from azure.identity import DefaultAzureCredential

        by_key: dict[str | None, list[int]] = defaultdict(list)
        for index, message in enumerate(messages):
            by_key[message.key].append(index)
        outcomes: list[Delivery | None] = [None] * len(messages)  # None: not tried
        try:
            client = EventHubProducerClient(
                fully_qualified_namespace=self.namespace,
                eventhub_name=topic,
                credential=DefaultAzureCredential(),
                # The SDK's own retry would send a batch again after an append whose answer was lost, and report
                # the two copies as one acknowledged send: the redrive log and a later run are the retry.
                retry_total=0,
            )
        except (AzureError, EventHubError, ValueError) as error:
            print(f"nothing sent: {type(error).__name__}: {error}", file=sys.stderr)
            return [Delivery.NOT_SENT] * len(messages)
        try:
            with client:
                for key, indexes in by_key.items():
                    for members, batch in self._batches(client, key, messages, indexes, outcomes):
                        _send_batch(client, batch, members, outcomes)
        except (AzureError, EventHubError) as error:  # making a batch failed (no login, e.g. no `az login`: the
            # credential's own error; the service busy), or closing the client: what was not sent never left
            untried = sum(1 for outcome in outcomes if outcome is None)
            print(
                f"stopped, {untried} not sent (a later run sends them): {type(error).__name__}: {error}",
                file=sys.stderr,
            )
        return [outcome or Delivery.NOT_SENT for outcome in outcomes]

    @staticmethod
    def _batches(
        client: Any,
        key: str | None,
        messages: Sequence[OutgoingRedrive],
        indexes: list[int],
        outcomes: list[Delivery | None],
    ) -> Iterator[tuple[list[int], Any]]:
        """The key's messages in batches as full as Event Hubs takes; one too large for a batch alone is not sent."""
        from azure.eventhub import EventData

        def new_batch() -> Any:
            return client.create_batch(partition_key=key) if key is not None else client.create_batch()

        batch, members = new_batch(), list[int]()
        for index in indexes:
            event = EventData(messages[index].value)
            event.properties = {name: value.decode() for name, value in messages[index].headers}
            try:
                batch.add(event)
            except ValueError:  # the batch is full: send it, start the next
                if members:
                    yield members, batch
                batch, members = new_batch(), list[int]()
                try:
                    batch.add(event)
                except ValueError:
                    outcomes[index] = Delivery.NOT_SENT
                    continue
            members.append(index)
        if members:
            yield members, batch


def _send_batch(client: Any, batch: Any, members: list[int], outcomes: list[Delivery | None]) -> None:
    """Send one batch: acknowledged, or unknown on any error (it may have been appended, never sent again).

    No error of ``send_batch`` proves that nothing was appended, unlike the broker's refusals the Kafka sender
    tells apart: azure-eventhub raises ``ConnectError`` for any dropped AMQP connection, one lost after the service
    took the events too (and with retries, only the last attempt's error). Not sent is for what never reached
    ``send_batch`` (``EventHubsRedriveSender.send``)."""
    try:
        client.send_batch(batch)
        outcome = Delivery.ACKNOWLEDGED
    except Exception as error:  # ConnectError and authentication errors too: the batch may have landed
        print(f"{len(members)} unconfirmed: {type(error).__name__}: {error}", file=sys.stderr)
        outcome = Delivery.UNKNOWN
    for index in members:
        outcomes[index] = outcome


def choose_sender(settings: Settings, source: SourceSettings, namespace: str | None) -> RedriveSender:
    if namespace:
        return EventHubsRedriveSender(namespace)
    host = settings.kafka_broker_list.split(",")[0].rsplit(":", 1)[0].strip().lower()
    if is_eventhubs_host(host):  # any cloud's: servicebus.windows.net, servicebus.chinacloudapi.cn, ...
        return EventHubsRedriveSender(host)
    return KafkaRedriveSender(settings, source)


@tool_main(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(SOURCES), help="the source whose dead letters to redrive")
    parser.add_argument(
        "--reason",
        action="append",
        default=[],
        choices=REASONS,
        metavar="REASON",
        help=f"only this reason (repeatable): {', '.join(REASONS)}",
    )
    parser.add_argument("--since", type=parse_since, help="only dead letters written at or after this ISO time")
    parser.add_argument("--dry-run", action="store_true", help="re-validate and report; send nothing")
    parser.add_argument("--eventhubs-namespace", help="send through Event Hubs (name or FQDN) with your Azure login")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help="settings file (Values)")
    parser.add_argument("--broker", type=broker_address, help="HOST:PORT (default: settings; devhost prints its own)")
    parser.add_argument("--lake", type=Path, help="a local lake directory (default: settings)")
    parser.add_argument(
        "--functions-url",
        default=LOCAL_FUNCTIONS_URL,
        help=f"the function app whose entities take re-applied state updates (key in {SYSTEM_KEY_SETTING})",
    )
    args = parser.parse_args(argv)
    env = tool_environment(args.settings, broker=args.broker, lake=args.lake, source=args.source)
    settings = load_settings(env)
    source = SOURCES[args.source]
    source_settings = load_source_settings(source.name, env)
    sender = None if args.dry_run else choose_sender(settings, source_settings, args.eventhubs_namespace)
    signaller: EntitySignaller | None = None
    if not args.dry_run:
        signaller = DurableHttpSignaller(args.functions_url, env.get(SYSTEM_KEY_SETTING, ""))
    try:
        lake = open_lake(settings)
        summary = redrive(
            source,
            lake=lake,
            target=RedriveTarget(  # N is read (and, for a source the lake's record lacks, written) only to re-signal
                source_settings.topic,
                settings.max_record_bytes,
                source_settings.format,
                bucket_settings=state_bucket_settings(settings),
                decoder=decoder_for(source, settings) if source.value_format == "avro" else None,
                state_enabled=source_settings.state_enabled,
            ),
            sender=sender,
            signaller=signaller,
            reasons=frozenset(args.reason),
            since_ms=args.since,
            dry_run=args.dry_run,
        )
    except RedriveInProgress as error:
        print(f"redrive of {source.name} stopped: {error}", file=sys.stderr)
        return EXIT_ANOTHER_REDRIVE_RUNNING
    except UnreadableLakeFile as error:  # the redrive log: without it, what was sent is unknown
        print(f"redrive of {source.name} stopped, nothing sent: unreadable redrive log {error}", file=sys.stderr)
        return EXIT_UNREADABLE_FILE
    except (LakeUnavailable, LakeError) as error:  # unreachable, or refused (no permission): the log keeps what went
        print(
            f"redrive of {source.name} stopped: cannot read the lake ({lake_target(settings)}): "
            f"{one_line(error, MAX_ERROR_TEXT)}; run again once it answers",
            file=sys.stderr,
        )
        return EXIT_UNREADABLE_FILE
    except RegistryUnavailable as error:  # an Avro source's letters cannot be checked: the log keeps what went
        print(
            f"redrive of {source.name} stopped: {one_line(error, MAX_ERROR_TEXT)}; "
            "what was sent before is logged; run again once it answers",
            file=sys.stderr,
        )
        return EXIT_SEND_FAILED
    print(summary.table())
    if summary.failed or summary.resignal_failed or summary.not_sent:
        return EXIT_SEND_FAILED
    return EXIT_UNREADABLE_FILE if summary.unreadable or summary.unknown else 0


if __name__ == "__main__":
    sys.exit(main())
