"""``python -m tools.redrive``: its lease, its Kafka sender, its exit codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.lake import LocalLake
from shared.redrive import Delivery, OutgoingRedrive, redrive, redrive_log, take_lease
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS
from tests.unit.shared.test_redrive import ORDERS, RecordingSender, _valid_dead_letter_rows
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
    assert redrive_cli.main(["orders", "--settings", str(tmp_path / "absent.json")]) == 3
    err = capsys.readouterr().err
    assert "another redrive of orders is running" in err and "the-other-run" in err
    assert redrive_log(lake, "orders") == (set(), set())


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"bootstrap.servers": "broker:9092"}),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
                "KAFKA_OAUTH_CLIENT_ID": "id",
                "KAFKA_OAUTH_CLIENT_SECRET": "secret",
                "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.example/token",
                "KAFKA_OAUTH_SCOPE": "https://broker/.default",
            },
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
    assert redrive_cli.main(["orders", "--dry-run", "--settings", str(tmp_path / "absent.json")]) == 4
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
