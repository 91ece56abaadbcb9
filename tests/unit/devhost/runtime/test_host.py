"""The local host's start-up and shutdown: its own schema registry served only when no other is named, the embedded
broker announced, no producer outliving it, messages never glued to the live line."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from devhost.runtime.console import ERASE_LINE
from devhost.runtime.host import LocalHost, StartOptions


@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({}, True),
        ({"SCHEMA_REGISTRY_URL": " "}, True),
        ({"SCHEMA_REGISTRY_URL": "http://localhost:8081"}, False),
        ({"SCHEMA_REGISTRY_KIND": "eventhubs"}, False),
    ],
)
def test_the_local_host_serves_its_registry_only_when_no_other_is_named(settings: dict[str, str], served: bool) -> None:
    from devhost.runtime.host import serves_registry

    assert serves_registry(settings) is served


class _FakeBroker:
    """A fake of ``embedded_broker`` (named as such): an address, and what had happened by the time it stopped. The
    order of the host's shutdown against the broker's stop is what these cases check, which Tansu cannot report;
    the host with the real embedded broker runs in tests/unit/devhost/test_main.py and tests/integration."""

    address = "127.0.0.1:5555"

    def __init__(self) -> None:
        self.stopped_after: list[str] | None = None
        self.events: list[str] = []

    @contextmanager
    def __call__(self) -> Iterator[str]:
        try:
            yield self.address
        finally:
            self.stopped_after = list(self.events)


class _FakeProducer:
    """``confluent_kafka.Producer`` as ``shared.kafka_clients.send`` uses it, recording flush and close."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def produce(self, *_args: Any, on_delivery: Any, **_kwargs: Any) -> None:
        on_delivery(None, None)

    def flush(self, _timeout: float | None = None) -> int:
        self.events.append("producer flushed")
        return 0

    def close(self) -> bool:
        self.events.append("producer closed")
        return True


def _embedded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> tuple[LocalHost, _FakeBroker]:
    import devhost.runtime.host as host_module

    broker = _FakeBroker()
    monkeypatch.setattr(host_module, "embedded_broker", broker)
    return LocalHost(StartOptions(broker="embedded", lake=tmp_path / "lake")), broker


def test_an_embedded_brokers_address_is_printed_and_kept_beside_the_lake_while_it_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, broker = _embedded(monkeypatch, tmp_path)
    state_file = tmp_path / "lake.state" / "broker"
    with ExitStack() as stack:
        config = host._configure(stack)
        assert config.settings["KAFKA_BROKER_LIST"] == broker.address
        assert state_file.read_text().strip() == broker.address
    assert not state_file.exists(), "removed at a clean stop"
    line = f"devhost: embedded broker at {broker.address} (for the tools: KAFKA_BROKER_LIST={broker.address})"
    assert line in capsys.readouterr().out.splitlines()


def test_the_generators_producers_are_closed_before_the_embedded_broker_stops(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import confluent_kafka

    from shared import kafka_clients
    from shared.records import ProducedRecord

    host, broker = _embedded(monkeypatch, tmp_path)
    monkeypatch.setattr(confluent_kafka, "Producer", lambda _config: _FakeProducer(broker.events))
    monkeypatch.setattr(kafka_clients, "_producers", {})
    with ExitStack() as stack:
        host._configure(stack)
        kafka_clients.send({"bootstrap.servers": broker.address}, "clickstream", [ProducedRecord("k", b"v")])
        assert kafka_clients._producers, "send keeps its producer across ticks"
    assert broker.stopped_after is not None and broker.stopped_after[-1] == "producer closed"
    assert not kafka_clients._producers


def test_a_message_during_the_live_line_starts_on_a_line_of_its_own(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import devhost.runtime.host as host_module

    monkeypatch.setattr(host_module.signal, "signal", lambda *_: None)  # keep pytest's own Ctrl-C
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    monkeypatch.setenv("COLUMNS", "100")
    host = LocalHost(StartOptions(duration=0.5))  # one live line (after 0.5 s), then the duration runs out
    host.stats.add("process_clickstream", "kafkaTrigger").invoked(100)
    host._wait()
    out = capsys.readouterr().out
    assert "process_clickstream 100 ev lag ?" in out, "the live line was shown"
    assert f"{ERASE_LINE}devhost: duration reached" in out
    assert out.endswith("\n"), "what comes next starts on a new line"


def test_a_runner_ended_by_an_error_is_named_and_kept_for_the_exit_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A runner that a bug of the host ended (not a failed invocation: those are retried) left its function gone
    while the run printed no failure and exited 0 (a review: a record's year-10000 timestamp)."""
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)
    host = LocalHost(StartOptions(duration=0.5))

    def broken() -> None:
        raise ValueError("year 10000 is out of range")

    thread = threading.Thread(target=host._reported, args=("process_clickstream", broken))
    thread.start()
    thread.join(5)
    assert list(host.crashed) == ["process_clickstream"]
    assert "devhost: process_clickstream stopped: ValueError: year 10000 is out of range" in capsys.readouterr().out
