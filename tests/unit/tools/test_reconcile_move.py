"""``python -m tools.reconcile --move-group-to-time``: each partition's landing ledger is marked with the offset it is
moved to before the group is moved (``shared.reconcile.mark_moves``); a dry run, or a refused move, writes nothing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shared.errors import LakeUnavailable
from shared.lake import LocalLake
from shared.layout import ledger_path
from shared.reconcile import Move
from shared.records import TopicPartition
from tools import reconcile as reconcile_cli

TOPIC = "orders"


class _Broker:
    """Two partitions of ``orders``, each retaining offsets 0-99, record ``n`` stamped ``n`` ms; the group committed
    10 on each. ``move`` records the ledgers as they are when the broker is asked to move the group."""

    def __init__(self, lake: LocalLake, state: str = "ConsumerGroupState.EMPTY") -> None:
        self.lake, self.state = lake, state
        self.moved: list[tuple[list[Move], list[object]]] = []

    def group_state(self, group: str) -> str:
        return self.state

    def partitions(self, topic: str) -> list[int]:
        return [0, 1]

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        return dict.fromkeys(partitions, 10)

    def broker_offsets_for_time(self, topic: str, partitions: list[int], at_ms: int) -> dict[int, int | None]:
        return dict.fromkeys(partitions)

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, 100

    def timestamp_at(self, topic: str, partition: int, offset: int) -> int:
        return offset

    def move(self, group: str, moves: list[Move]) -> None:
        self.moved.append((moves, [_moved_to(self.lake, partition) for partition in (0, 1)]))


def _moved_to(lake: LocalLake, partition: int) -> object:
    found = lake.read_versioned(ledger_path(TOPIC, TopicPartition(TOPIC, partition)))
    return None if found is None else orjson.loads(found[0]).get("moved_to")


def _run(broker: _Broker, lake: LocalLake, *, apply: bool) -> int:
    return reconcile_cli.run_move(
        broker,  # type: ignore[arg-type]
        TOPIC,
        "orders-processor",
        50,
        apply=apply,
        source=TOPIC,
        lake=lake,  # given to a dry run too: it must not write to it
    )


def test_the_ledgers_are_marked_with_the_offsets_moved_to_before_the_group_is_moved(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = LocalLake(tmp_path)
    broker = _Broker(lake)
    assert _run(broker, lake, apply=True) == 0
    assert "moved orders-processor: 2 partitions" in capsys.readouterr().out
    ((moves, marked),) = broker.moved
    assert [move.target for move in moves] == [50, 50]
    assert marked == [[50], [50]], "the broker was asked to move the group before the ledgers were marked"


def test_a_dry_run_and_a_refused_move_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lake = LocalLake(tmp_path)
    broker = _Broker(lake)
    assert _run(broker, lake, apply=False) == 0
    assert "dry run" in capsys.readouterr().out
    busy = _Broker(lake, "ConsumerGroupState.STABLE")
    assert _run(busy, lake, apply=True) == 2
    assert "has members" in capsys.readouterr().out
    assert not list(tmp_path.rglob("*")) and not broker.moved and not busy.moved


def test_a_mark_that_cannot_be_written_moves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = LocalLake(tmp_path)
    broker = _Broker(lake)

    def down(path: str, data: bytes, version: str | None) -> str:
        raise LakeUnavailable("the lake is down")

    monkeypatch.setattr(lake, "write_if", down)
    assert _run(broker, lake, apply=True) == 2
    printed = capsys.readouterr().out
    assert "could not be marked" in printed and "nothing was moved" in printed, printed
    assert not broker.moved
