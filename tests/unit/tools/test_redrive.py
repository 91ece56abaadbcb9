"""``python -m tools.redrive``: a run that finds another one holding the source's lease stops, sending nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.lake import LocalLake
from shared.redrive import redrive_log, take_lease
from shared.settings import load_settings, load_source_settings
from tools import redrive as redrive_cli


def test_redrive_cli_exits_with_3_while_another_redrive_holds_the_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    lake = LocalLake(tmp_path)
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
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"},
            {"sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString", "sasl.password": "send-only"},
        ),
    ],
)
def test_the_kafka_sender_connects_as_the_sources_generator_does(
    environ: dict[str, str], expected: dict[str, str]
) -> None:
    """With SASL it sends with the source's producer password (the send-only rule), idempotently."""
    env = {"KAFKA_BROKER_LIST": "broker:9092", "ORDERS_KAFKA_PRODUCER_SASL_PASSWORD": "send-only"} | environ
    sender = redrive_cli.choose_sender(load_settings(env), load_source_settings("orders", env), None)
    assert isinstance(sender, redrive_cli.KafkaRedriveSender)
    assert sender.config["enable.idempotence"] is True and expected.items() <= sender.config.items()
