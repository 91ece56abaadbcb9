"""``python -m tools.reconcile --move-group-to-time``: each partition's landing ledger is marked with the offset it is
moved to before the group is moved (``shared.reconcile.mark_moves``); a dry run, or a refused move, writes nothing."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from shared.errors import LakeUnavailable
from shared.lake import LocalLake
from shared.layout import ledger_path
from shared.reconcile import Move, offset_for_time
from shared.records import TopicPartition
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import reconcile as reconcile_cli

TOPIC = "orders"


class _Broker:
    """A fake broker (named as such): two partitions of ``orders``, each retaining offsets 0-99, record ``n`` stamped
    ``n`` ms; the group committed 10 on each. ``move`` records the ledgers as they are when the broker is asked to
    move the group: what these cases check is the order of the tool's lake writes against that request, which a
    real broker cannot show. The move itself against Tansu is ``tests/integration/test_reconcile.py``."""

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


# A partition as a transactional producer leaves it: records at 0-3 and 5-7 (stamped 1000 x offset), commit markers
# at 4 and 8-9, which hold no record a consumer is given: end 10.
RECORDS = {offset: offset * 1000 for offset in (0, 1, 2, 3, 5, 6, 7)}
MARKED_END = 10


def _next_record(offset: int) -> int | None:
    """``Broker.timestamp_at``: the first record at or after ``offset``, or None when there is none."""
    return next((RECORDS[o] for o in range(offset, MARKED_END) if o in RECORDS), None)


@pytest.mark.parametrize(
    ("at_ms", "expected"),
    [(0, 0), (3000, 3), (3500, 4), (5000, 4), (5001, 6), (7000, 7), (7001, MARKED_END), (99_000, MARKED_END)],
)
@pytest.mark.parametrize("broker_answer", [None, 0, -1, 4, 8, 9, MARKED_END])
def test_offsets_that_hold_no_record_count_as_the_next_record_and_a_marker_tail_as_the_end(
    at_ms: int, expected: int, broker_answer: int | None
) -> None:
    """The search read ``end - 1`` for a time after every record and found a commit marker there: the move died with
    ``LookupError``. An offset that holds no record answers for the next one; none after it counts as not earlier.
    Before 4 (a marker) every record is earlier than 5000, and the first at or after 4 is not: 4 (as good as 5, the
    first record a consumer reads either way). Whatever the broker's time index answers, the answer is checked
    against the records, or searched."""
    target, how = offset_for_time(_next_record, 0, MARKED_END, at_ms, broker_answer)
    assert (target, how in ("broker", "search")) == (expected, True)


def test_a_partition_holding_only_markers_is_moved_to_its_end() -> None:
    assert offset_for_time(lambda offset: None, 3, 7, 5000, None) == (7, "search")
    assert offset_for_time(lambda offset: None, 3, 7, 5000, -1) == (7, "search")  # its record before is none


class _MarkedBroker(_Broker):
    """One partition ending in a commit marker, read as ``Broker`` reads it (``timestamp_at``: the next record)."""

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, MARKED_END

    def timestamp_at(self, topic: str, partition: int, offset: int) -> int | None:  # type: ignore[override]
        return _next_record(offset)


def test_moving_past_the_last_record_of_a_partition_ending_in_a_marker_moves_the_group_to_its_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Skipping a backlog on a topic a transactional producer writes: the move table, not a traceback."""
    lake = LocalLake(tmp_path)
    broker = _MarkedBroker(lake)
    code = reconcile_cli.run_move(
        broker,  # type: ignore[arg-type]
        TOPIC,
        "orders-processor",
        60_000,
        apply=True,
        source=TOPIC,
        lake=lake,
    )
    assert code == 0
    ((moves, marked),) = broker.moved
    assert [(move.target, move.how) for move in moves] == [(MARKED_END, "search")] and marked[0] == [MARKED_END]
    assert "moved orders-processor: 1 partitions" in capsys.readouterr().out


def test_a_broker_that_fails_part_way_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A read that times out or errs while the move is worked out (the broker stopped answering) was a traceback."""

    class Failing(_Broker):
        address = "127.0.0.1:9092"

        def __init__(self, _config: object) -> None:
            self.state, self.moved = "ConsumerGroupState.EMPTY", []

        def check(self, topic: str) -> None: ...

        def close(self) -> None: ...

        def retained(self, topic: str, partition: int) -> tuple[int, int]:
            raise reconcile_cli.BrokerFailed(f"{topic}/{partition}: nothing from offset 99 within 30s")

    monkeypatch.setattr(reconcile_cli, "Broker", Failing)
    argv = ["orders", "--lake", str(tmp_path), "--settings", NO_SETTINGS]
    assert reconcile_cli.main([*argv, "--move-group-to-time", "2026-11-24T12:00:00Z", "--apply"]) == 2
    printed = capsys.readouterr()
    (line,) = printed.err.splitlines()
    assert line.startswith("reconcile of orders stopped: the broker at 127.0.0.1:9092 (KAFKA_BROKER_LIST) failed ")
    assert "nothing from offset 99 within 30s" in line and "nothing was moved" in line, line
    assert printed.out == "" and not list(tmp_path.iterdir())


class _SlowAdmin:
    """An admin client whose every request gets no answer in time (a broker slow part way)."""

    class _Late:
        def result(self, timeout: float) -> None:
            raise TimeoutError

    def __getattr__(self, _name: str) -> object:
        return lambda *_args, **_kwargs: defaultdict(self._Late)


def test_a_broker_that_answers_the_groups_requests_too_late_is_a_broker_failure_not_a_traceback() -> None:
    """Review 15: ``Future.result`` raised the builtin TimeoutError, which main did not catch: a traceback and exit 1,
    the code that says "NOT reconciled"."""
    broker = reconcile_cli.Broker.__new__(reconcile_cli.Broker)
    broker.admin = _SlowAdmin()
    with pytest.raises(reconcile_cli.BrokerFailed, match="committed offsets of g: no answer within"):
        broker.committed("g", TOPIC, [0])
    with pytest.raises(reconcile_cli.BrokerFailed, match="describe consumer group g: no answer"):
        broker.group_state("g")
    with pytest.raises(reconcile_cli.MoveUnknown):
        broker.move("g", [Move(TOPIC, 0, 10, 50, "search")])


def test_a_move_the_broker_did_not_answer_says_its_outcome_is_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class Unanswered(_Broker):
        def move(self, group: str, moves: list[Move]) -> None:
            raise reconcile_cli.MoveUnknown("no answer within 30s")

    assert _run(Unanswered(LocalLake(tmp_path)), LocalLake(tmp_path), apply=True) == 2
    assert "it may or may not have moved" in capsys.readouterr().out
