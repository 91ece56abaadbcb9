"""``python -m tools.redrive``: its lease, its Kafka sender, its exit codes."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.eventhub.exceptions import AuthenticationError, ConnectError

from shared import formats
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS
from shared.redrive import Delivery, OutgoingRedrive, redrive, redrive_log, take_lease
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS
from tests.unit.shared.test_redrive import ORDER, ORDERS, RecordingSender, _valid_dead_letter_rows
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import redrive as redrive_cli


def _local_lake(root: Path, monkeypatch: pytest.MonkeyPatch) -> LocalLake:
    """A local lake at ``root``, as the tools' settings name it."""
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(root))
    return LocalLake(root)


def test_redrive_cli_exits_with_3_while_another_redrive_holds_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _local_lake(tmp_path, monkeypatch)
    take_lease(lake, "orders", "the-other-run")
    assert redrive_cli.main(["orders", "--settings", NO_SETTINGS]) == 3
    err = capsys.readouterr().err
    assert "another redrive of orders is running" in err and "the-other-run" in err
    assert redrive_log(lake, "orders") == (set(), set())


OAUTH_SETTINGS = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
    "KAFKA_OAUTH_CLIENT_ID": "id",
    "KAFKA_OAUTH_CLIENT_SECRET": "secret",
    "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.example/token",
    "KAFKA_OAUTH_SCOPE": "https://broker/.default",
}


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"KAFKA_BROKER_LIST": "127.0.0.1:9092"}, {"bootstrap.servers": "127.0.0.1:9092"}),
        (
            OAUTH_SETTINGS,
            {"sasl.mechanism": "OAUTHBEARER", "sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.id": "id"},
        ),
    ],
)
def test_the_kafka_sender_connects_as_the_sources_generator_does(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    """It sends with the generators' producer's credentials (shared.kafka_clients.producer_security), idempotently."""
    env = {"KAFKA_BROKER_LIST": "broker:9092"} | environ
    sender = redrive_cli.choose_sender(load_settings(env), load_source_settings("orders", env), None)
    assert isinstance(sender, redrive_cli.KafkaRedriveSender)
    assert sender.config["enable.idempotence"] is True and expected.items() <= sender.config.items()


@pytest.mark.parametrize(
    "broker",
    ["ns.servicebus.windows.net:9093", "NS.servicebus.chinacloudapi.cn:9093", " ns.servicebus.usgovcloudapi.net:9093"],
)
def test_an_event_hubs_namespace_of_any_cloud_is_sent_to_with_the_event_hubs_client(broker: str) -> None:
    """Only the public cloud's suffix was known: a sovereign cloud's namespace got the Kafka sender."""
    env = {"KAFKA_BROKER_LIST": broker} | OAUTH_SETTINGS
    sender = redrive_cli.choose_sender(load_settings(env), load_source_settings("orders", env), None)
    assert isinstance(sender, redrive_cli.EventHubsRedriveSender)
    assert sender.namespace == broker.strip().rsplit(":", 1)[0].lower()


def test_with_the_broker_unreachable_nothing_is_in_doubt_and_the_next_run_sends_every_letter(tmp_path: Path) -> None:
    """A send to no broker never left the process: it is ``not sent``, not ``unconfirmed`` (never sent again)."""
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(20, 23), FIXED_NOW_MS)
    env = {"LAKE_LOCAL_ROOT": str(tmp_path), "KAFKA_BROKER_LIST": "127.0.0.1:1"}  # nothing listens there
    sender = redrive_cli.KafkaRedriveSender(load_settings(env), load_source_settings("orders", env), timeout=1.0)
    first = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (first.sent, first.failed, first.not_sent) == (0, 0, 3)
    again = RecordingSender()
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=again).sent == 3
    assert sorted(message.entry.offset for message in again.sent) == [20, 21, 22]


def test_the_cli_names_an_unreadable_dead_letter_file_and_exits_with_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _local_lake(tmp_path, monkeypatch)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    bad_path = f"deadletter/orders/date=2026-11-24/hour=10/orders+1+i0+{99:020d}+{99:020d}.schema.jsonl.gz"
    lake.write_atomic(bad_path, b"truncated")
    assert redrive_cli.main(["orders", "--dry-run", "--settings", NO_SETTINGS]) == 4
    out = capsys.readouterr().out
    assert f"unreadable: {bad_path}: BadGzipFile" in out
    assert re.search(r"^now valid +3$", out, re.MULTILINE), out


class _NoLogin:
    """Stands in for azure-eventhub's producer (no Event Hubs here): the credential finds no login, as
    DefaultAzureCredential does without ``az login``, when the first batch is made."""

    def __init__(self, **_: object) -> None: ...

    def __enter__(self) -> _NoLogin:
        return self

    def __exit__(self, *_: object) -> None: ...

    def create_batch(self, **_: object) -> None:
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token")


def test_without_an_azure_login_the_event_hubs_sender_sends_nothing_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not sent (sent again next run), never unconfirmed: no batch was made, so none can have been appended."""
    import azure.eventhub

    monkeypatch.setattr(azure.eventhub, "EventHubProducerClient", _NoLogin)
    sender = redrive_cli.EventHubsRedriveSender("evhns-spoc-x1y2")
    outgoing = [OutgoingRedrive("k", b"{}", (), None) for _ in range(3)]  # type: ignore[arg-type]
    assert sender.send("orders", outgoing) == [Delivery.NOT_SENT] * 3


def test_an_entity_api_that_drops_the_connection_is_a_failed_signal_not_a_traceback() -> None:
    """A re-signal can be repeated (the entity applies an offset once): the next run re-applies it."""
    import socket
    import threading

    from shared.state.aggregate import Signal

    listener = socket.create_server(("127.0.0.1", 0))

    def drop_each_connection() -> None:
        for _ in range(2):
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.close()  # no answer: http.client's RemoteDisconnected

    threading.Thread(target=drop_each_connection, daemon=True).start()
    port = listener.getsockname()[1]
    signaller = redrive_cli.DurableHttpSignaller(f"http://127.0.0.1:{port}", timeout=5.0)
    signals = [Signal("device_activity", f"~b{i}of8", "apply", {"parts": []}) for i in range(2)]
    try:
        assert signaller.signal(signals) == [False, False]
    finally:
        listener.close()


class _Batch(list[Any]):
    add = list.append


class _Busy:
    """Stands in for azure-eventhub's producer: acknowledges each batch sent; making batch ``fail_at`` (1-based)
    fails with a service error (busy, a transient error), or sending it does with ``fail_in_send``."""

    fail_at, fail_in_send = 2, False
    sent: ClassVar[list[_Batch]] = []

    def __init__(self, **_: object) -> None:
        self.made = 0

    def __enter__(self) -> _Busy:
        return self

    def __exit__(self, *_: object) -> None: ...

    def create_batch(self, **_: object) -> _Batch:
        from azure.eventhub.exceptions import EventHubError

        self.made += 1
        if self.made == self.fail_at and not self.fail_in_send:
            raise EventHubError("the service is busy (a transient error)")
        return _Batch()

    def send_batch(self, batch: _Batch) -> None:
        from azure.eventhub.exceptions import EventHubError

        if self.made == self.fail_at and self.fail_in_send:
            raise EventHubError("the connection was lost waiting for the answer")
        self.sent.append(batch)


def _letters_of_three_keys(lake: LocalLake) -> None:
    rows = [
        {
            "_topic": "orders",
            "_partition": 0,
            "_incarnation": 0,
            "_offset": offset,
            "_key": f"k{offset}",
            "_kafka_timestamp": FIXED_NOW_MS,
            "reason": "schema",
            "detail": "-",
            "raw_base64": base64.b64encode(ORDER % offset).decode(),
            "dead_lettered_at": FIXED_NOW_MS,
        }
        for offset in range(3)
    ]
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, rows, record_name="x")
    lake.write_atomic(f"deadletter/orders/date=2026-11-24/hour=10/orders+0+i0+{0:020d}+{2:020d}.jsonl.gz", data)


@pytest.fixture
def busy_event_hubs(monkeypatch: pytest.MonkeyPatch) -> type[_Busy]:
    import azure.eventhub
    import azure.identity

    busy = type("Busy", (_Busy,), {"sent": []})  # this test's own settings and record of batches
    monkeypatch.setattr(azure.eventhub, "EventHubProducerClient", busy)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: object())
    return busy


def test_an_event_hubs_error_part_way_leaves_the_letters_not_tried_to_a_later_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], busy_event_hubs: type[_Busy]
) -> None:
    """Key k0's batch is acknowledged; making k1's fails. k1 and k2 never left the tool: not sent, not unconfirmed
    (which would never be sent again), and the command ends with its summary and exit 1, not a traceback or 0."""
    lake = _local_lake(tmp_path, monkeypatch)
    _letters_of_three_keys(lake)
    no_file = ["--settings", NO_SETTINGS]
    assert redrive_cli.main(["orders", "--eventhubs-namespace", "evhns-x", *no_file]) == redrive_cli.EXIT_SEND_FAILED
    printed = capsys.readouterr()
    assert re.search(r"^not sent \(sent again next run\) +2$", printed.out, re.MULTILINE), printed.out
    assert "stopped, 2 not sent (a later run sends them): EventHubError: the service is busy" in printed.err
    assert (len(busy_event_hubs.sent), redrive_log(lake, "orders")) == (1, ({("orders", 0, 0, 0)}, set()))

    busy_event_hubs.fail_at = 0  # the service answers again
    again = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=redrive_cli.EventHubsRedriveSender("evhns-x"))
    assert (again.sent, again.already_redriven, len(busy_event_hubs.sent)) == (2, 1, 3), again.table()


def test_an_event_hubs_error_sending_a_batch_makes_only_that_batch_unconfirmed(
    busy_event_hubs: type[_Busy],
) -> None:
    busy_event_hubs.fail_in_send = True
    outgoing = [OutgoingRedrive(f"k{i}", b"{}", (), None) for i in range(3)]  # type: ignore[arg-type]
    sent = redrive_cli.EventHubsRedriveSender("evhns-x").send("orders", outgoing)
    assert sent == [Delivery.ACKNOWLEDGED, Delivery.UNKNOWN, Delivery.ACKNOWLEDGED]


class _AppendedThenConnectionLost:
    """Stands in for azure-eventhub's producer when the service appended the batch and the AMQP connection dropped
    before its disposition came back: the SDK raises ``ConnectError`` (it maps any ``AMQPConnectionError`` to it,
    and its retry loop raises the last attempt's error), though the events are in the hub. Keeps the keyword
    arguments the client was built with."""

    appended: ClassVar[list[Any]] = []
    options: ClassVar[dict[str, object]] = {}
    error: ClassVar[type[Exception] | None] = None

    def __init__(self, **options: object) -> None:
        type(self).options = options

    def __enter__(self) -> _AppendedThenConnectionLost:
        return self

    def __exit__(self, *_: object) -> None: ...

    def create_batch(self, **_: object) -> _Batch:
        return _Batch()

    def send_batch(self, batch: _Batch) -> None:
        self.appended.extend(batch)  # the service has the events
        if self.error is not None:
            raise self.error("Connection lost waiting for the disposition (amqp:connection:forced)")


@pytest.fixture
def lossy_event_hubs(monkeypatch: pytest.MonkeyPatch) -> type[_AppendedThenConnectionLost]:
    import azure.eventhub
    import azure.identity

    hub = type("Lossy", (_AppendedThenConnectionLost,), {"appended": [], "error": ConnectError})
    monkeypatch.setattr(azure.eventhub, "EventHubProducerClient", hub)
    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", lambda: object())
    return hub


def test_an_event_hubs_connect_error_after_the_batch_went_is_unconfirmed_and_never_sent_again(
    tmp_path: Path, lossy_event_hubs: type[_AppendedThenConnectionLost]
) -> None:
    """A ConnectError from ``send_batch`` does not prove nothing was appended; taking it for not sent would make
    the next run send every letter of that batch again, and each redriven record would land twice."""
    lake = LocalLake(tmp_path)
    _letters_of_three_keys(lake)
    sender = redrive_cli.EventHubsRedriveSender("evhns-x")
    first = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    lossy_event_hubs.error = None  # the connection is fine again; an operator reruns the redrive
    again = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (first.failed, first.not_sent, again.sent, again.unconfirmed) == (3, 0, 0, 3), again.table()
    assert len(lossy_event_hubs.appended) == 3


@pytest.mark.parametrize("error", [ConnectError, AuthenticationError, ClientAuthenticationError, OSError])
def test_every_error_from_sending_an_event_hubs_batch_leaves_it_unconfirmed(
    error: type[Exception], lossy_event_hubs: type[_AppendedThenConnectionLost]
) -> None:
    """Refused logins and dropped connections included: none of them proves the batch was not appended."""
    lossy_event_hubs.error = error
    outgoing = [OutgoingRedrive(f"k{i}", b"{}", (), None) for i in range(2)]  # type: ignore[arg-type]
    assert redrive_cli.EventHubsRedriveSender("evhns-x").send("orders", outgoing) == [Delivery.UNKNOWN] * 2


def test_the_event_hubs_client_does_not_retry_a_send_itself(
    lossy_event_hubs: type[_AppendedThenConnectionLost],
) -> None:
    """The SDK's default retries would send a batch again after a first attempt that was appended but timed out,
    and report the two copies as one acknowledged send: the redrive log and a later run are the retry."""
    lossy_event_hubs.error = None
    outgoing = [OutgoingRedrive("k", b"{}", (), None)]  # type: ignore[arg-type]
    assert redrive_cli.EventHubsRedriveSender("evhns-x").send("orders", outgoing) == [Delivery.ACKNOWLEDGED]
    assert lossy_event_hubs.options["retry_total"] == 0


def test_a_kafka_setting_the_client_refuses_sends_nothing_and_leaves_every_letter_to_a_later_run(
    tmp_path: Path,
) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(20, 23), FIXED_NOW_MS)
    env = {"LAKE_LOCAL_ROOT": str(tmp_path), "KAFKA_BROKER_LIST": "127.0.0.1:1"}
    sender = redrive_cli.KafkaRedriveSender(load_settings(env), load_source_settings("orders", env), timeout=1.0)
    sender.config["no.such.setting"] = "x"
    first = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (first.sent, first.failed, first.not_sent) == (0, 0, 3)


def test_the_cli_names_a_letter_a_damaged_raw_file_may_hold_and_exits_with_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = _local_lake(tmp_path, monkeypatch)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    raw_path = f"raw/orders/date=2026-11-24/hour=10/orders+1+i0+{11:020d}+{11:020d}.parquet"
    lake.write_atomic(raw_path, b"PAR1 damaged")
    assert redrive_cli.main(["orders", "--dry-run", "--settings", NO_SETTINGS]) == 4
    out = capsys.readouterr().out
    assert f"unknown: not sent: orders/1/11 (schema): raw file {raw_path}: " in out
    assert re.search(r"^now valid +2$", out, re.MULTILINE), out


@pytest.mark.parametrize(
    ("environ", "line"),
    [
        (
            {"MAX_RECORD_BYTES": "abc"},
            "python -m tools.redrive: invalid settings: MAX_RECORD_BYTES: Input should be a valid integer, unable to "
            "parse string as an integer (got 'abc')",
        ),
        (
            {"LAKE_KIND": "s3"},
            "python -m tools.redrive: invalid settings: LAKE_KIND: Input should be 'local', 'blob' or 'adls' "
            "(got 's3')",
        ),
        (
            {"ORDERS_FORMAT": "csv"},
            "python -m tools.redrive: invalid settings of source 'orders': ORDERS_FORMAT: Input should be 'parquet', "
            "'avro' or 'jsonl' (got 'csv')",
        ),
    ],
)
def test_a_bad_setting_is_one_line_naming_it_and_exit_2(
    environ: dict[str, str],
    line: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """It was pydantic's ValidationError (or the ConfigurationError) as a traceback."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert redrive_cli.main(["orders", "--dry-run", "--settings", NO_SETTINGS]) == 2
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_settings_file_that_is_not_json_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_text("{not json")
    assert redrive_cli.main(["orders", "--dry-run", "--settings", str(settings)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"python -m tools.redrive: invalid settings: {settings}: not JSON: unexpected character")


def test_a_functions_url_that_is_not_https_is_one_line_and_exit_2_for_a_bad_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 1 says sends or signals failed; a refused ``--functions-url`` is a bad argument (2), named in one line."""
    argv = ["orders", "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    assert redrive_cli.main([*argv, "--broker", "127.0.0.1:1", "--functions-url", "http://example.com"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("python -m tools.redrive: --functions-url must be https://"), line


def test_a_reason_that_is_not_one_is_refused_naming_the_reasons(capsys: pytest.CaptureFixture[str]) -> None:
    """``--reason nope`` was taken and filtered every dead letter out: a redrive of nothing, silently."""
    with pytest.raises(SystemExit) as raised:
        redrive_cli.main(["orders", "--reason", "nope"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "argument --reason: invalid choice: 'nope'" in err and "'schema'" in err and "'entity_rejected'" in err


def test_an_unreachable_lake_is_one_line_naming_it_without_its_key_and_exit_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """LAKE_KIND=blob with no Azurite was a LakeUnavailable traceback."""
    from shared.errors import LakeUnavailable

    def unreachable(_settings: Any) -> Any:
        raise LakeUnavailable(
            "create container lake: HTTPConnection(host='127.0.0.1', port=10000): Failed to establish a new "
            "connection: [Errno 111] Connection refused"
        )

    key = "c2VjcmV0LWtleQ=="
    monkeypatch.setenv("LAKE_KIND", "blob")
    monkeypatch.setenv(
        "LAKE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
    )
    monkeypatch.setattr(redrive_cli, "open_lake", unreachable)
    assert redrive_cli.main(["orders", "--dry-run", "--settings", NO_SETTINGS]) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "redrive of orders stopped: cannot read the lake (LAKE_KIND=blob at http://127.0.0.1:10000/devstoreaccount1, "
        "container lake): create container lake: "
    )
    assert "Connection refused" in line and key not in line


def test_an_unreachable_schema_registry_is_one_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An Avro source's dead letter is checked against the registry before it is sent; a registry that does not
    answer (nothing listens on port 1) was a RegistryUnavailable traceback."""
    from shared import formats
    from shared.dead_letters import DeadLetter, Reason
    from shared.lake.local import LocalLake
    from shared.landing.files import DEADLETTER_COLUMNS, dead_letter_row
    from shared.records import KafkaRecord
    from tests.conftest import FIXED_NOW_MS
    from tests.unit.shared.schema_registry.conftest import avro_source

    monkeypatch.setitem(redrive_cli.SOURCES, "orders", avro_source())
    framed = b"\x00" + (7).to_bytes(4, "big") + b"\x02"  # Confluent's wire format, schema id 7
    letter = DeadLetter(KafkaRecord("orders", 0, 3, "k", framed, FIXED_NOW_MS), Reason.UNKNOWN_SCHEMA, "id 7")
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [dead_letter_row(letter, FIXED_NOW_MS)], record_name="x")
    LocalLake(tmp_path).write_atomic(
        f"deadletter/orders/date=2026-11-24/hour=10/orders+0+i0+{3:020d}+{3:020d}.unknown_schema.jsonl.gz", data
    )
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://127.0.0.1:1")
    argv = ["orders", "--dry-run", "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    assert redrive_cli.main(argv) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("redrive of orders stopped: schema registry ") and "did not answer" in line
    assert line.endswith("what was sent before is logged; run again once it answers")


def test_a_dry_run_of_a_keyed_source_writes_no_record_of_bucket_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run promises to send nothing; it wrote the lake's record of N with the operator's
    NEW_SOURCE_STATE_BUCKETS, which the app then took (a small N evicts keys from full buckets)."""
    monkeypatch.setenv("NEW_SOURCE_STATE_BUCKETS", "16")
    argv = ["mobile", "--dry-run", "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    assert redrive_cli.main(argv) == 0
    assert not (tmp_path / "_state").exists()


@pytest.mark.parametrize(
    ("code", "delivery"),
    [
        ("INVALID_TIMESTAMP", "NOT_SENT"),
        ("POLICY_VIOLATION", "NOT_SENT"),
        ("MSG_SIZE_TOO_LARGE", "NOT_SENT"),
        ("_MSG_TIMED_OUT", "UNKNOWN"),
        ("REQUEST_TIMED_OUT", "UNKNOWN"),
    ],
)
def test_a_broker_refusal_is_not_sent_and_a_timeout_unknown(code: str, delivery: str) -> None:
    """A redriven record keeps its Kafka timestamp: a topic whose message.timestamp.difference.max.ms it exceeds
    refuses it (INVALID_TIMESTAMP), never appended; taken for unknown, it was never sent again (a review's
    finding). A timeout may have been appended: unknown, never sent again."""
    from confluent_kafka import KafkaError

    assert redrive_cli._kafka_delivery(KafkaError(getattr(KafkaError, code))) is Delivery[delivery]
