"""The generate_<source> timers' progress in the lake, with the broker replaced by a recording send: what a tick
reads and writes, and what it sends when reads fail, formats differ, sends fail or other instances run too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from functions import bindings
from functions import generator as generator_functions
from shared import generator_ticks, kafka_clients
from shared import settings as settings_module
from shared.errors import ConfigurationError, LakeError, TransientError, UnreadableLakeFile
from shared.generator_ticks import generate_messages
from shared.lake import LocalLake
from shared.sources import get_source
from tests.unit.functions.conftest import user_function

FIRST = SimpleNamespace(retry_context=None)


def _retry(count: int) -> Any:
    return SimpleNamespace(retry_context=SimpleNamespace(retry_count=count, max_retry_count=-1))


class _Sends:
    """``kafka_clients.send`` as the generator calls it: records each attempt, fails the ones it is told to."""

    def __init__(self) -> None:
        self.attempts: list[list[tuple[str | None, bytes]]] = []
        self.fail_next = 0

    def __call__(self, _config: Any, topic: str, records: Any) -> None:
        self.attempts.append([(record.key, record.value) for record in records])
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError(f"{topic}: 0 failed, 2 unacknowledged of {len(records)}: timed out")

    @property
    def values(self) -> list[bytes]:
        return [value for attempt in self.attempts for _, value in attempt]


@pytest.fixture
def sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sends]:
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setattr(generator_functions, "_delivered", {})
    monkeypatch.setattr(generator_functions, "_refused_alone", {})
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    recorder = _Sends()
    monkeypatch.setattr(kafka_clients, "send", recorder)
    yield recorder
    for cached in caches:
        cached.cache_clear()


def _restart(monkeypatch: pytest.MonkeyPatch, process: str) -> None:
    """Another worker process: its own id, and no memory of what the first one delivered."""
    monkeypatch.setattr(generator_functions, "PROCESS_ID", process)
    monkeypatch.setattr(generator_functions, "_delivered", {})


def _progress(tmp_path: Path, source: str) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "_generator" / f"{source}.json").read_text()))


class _CountingLake(LocalLake):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def read(self, path: str) -> bytes:
        self.calls.append("read")
        return super().read(path)

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        self.calls.append("read_versioned")
        return super().read_versioned(path)

    def write_atomic(self, path: str, data: bytes) -> None:
        self.calls.append("write_atomic")
        super().write_atomic(path, data)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        self.calls.append("write_if")
        return super().write_if(path, data, version)


def test_a_tick_reads_and_writes_its_progress_once(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    counting = _CountingLake(tmp_path)
    monkeypatch.setattr(generator_functions, "lake", lambda: counting)
    generate = user_function("generate_sensors")
    for _ in range(3):
        counting.calls.clear()
        generate(timer=None, context=FIRST)
        assert counting.calls == ["read_versioned", "write_if"]  # the steady state: one read, one conditional write
    assert _progress(tmp_path, "sensors")["sent"] == 200 and len(sends.attempts) == 3


def test_a_failed_read_of_the_progress_raises_and_does_not_restart_a_finished_run(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure but "no such file" (here a 403) used to count as "nothing sent yet": the run began again."""
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "14")
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    generate = user_function("generate_sensors")
    for _ in range(3):
        generate(timer=None, context=FIRST)  # 7, 7, then the run is complete
    assert len(sends.values) == 14
    failures = iter([LakeError("read _generator/sensors.json: not authorised (AuthorizationFailure)")])
    real = LocalLake.read_versioned

    def flaky(self: LocalLake, path: str) -> tuple[bytes, str] | None:
        for error in failures:
            raise error
        return real(self, path)

    monkeypatch.setattr(LocalLake, "read_versioned", flaky)
    with pytest.raises(LakeError, match="not authorised"):
        generate(timer=None, context=FIRST)
    for retry in range(1, 4):
        generate(timer=None, context=_retry(retry))
    assert len(sends.values) == 14, f"{len(sends.values) - 14} records sent again after one failed read"


@pytest.mark.parametrize(
    ("content", "why"),
    [('{"version": 2, "next_index": 500}', "format version 2"), ('{"sent": 500, "pend', "not JSON")],
)
def test_progress_this_version_cannot_read_is_refused_naming_the_file_and_nothing_is_sent(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, why: str
) -> None:
    """A newer version's progress read after a rollback, or a damaged file, is not "nothing sent yet"."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    (tmp_path / "_generator").mkdir()
    (tmp_path / "_generator" / "sensors.json").write_text(content)
    with pytest.raises(UnreadableLakeFile, match=why) as raised:
        user_function("generate_sensors")(timer=None, context=FIRST)
    assert str(raised.value).startswith("_generator/sensors.json: ")
    assert not sends.attempts
    assert (tmp_path / "_generator" / "sensors.json").read_text() == content


def test_the_retry_of_an_unseeded_config_source_sends_the_same_records(
    sends: _Sends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Datagen config without random.seed keeps its progress; its retry used to regenerate the tick's fields."""
    monkeypatch.setenv("ORDERS_GENERATOR_EVENTS_PER_TICK", "5")
    monkeypatch.delenv("ORDERS_GENERATOR_SEED", raising=False)
    generate = user_function("generate_orders")
    sends.fail_next = 1  # the broker acknowledged some of them, then the send timed out
    with pytest.raises(TransientError):
        generate(timer=None, context=_retry(0))
    generate(timer=None, context=_retry(1))
    first, retry = sends.attempts
    assert [json.loads(value)["orderid"] for _, value in first] == [0, 1, 2, 3, 4]
    assert retry == first
    generate(timer=None, context=FIRST)
    assert [json.loads(value)["orderid"] for _, value in sends.attempts[2]] == [5, 6, 7, 8, 9]


def test_a_tick_that_loses_the_progress_to_another_instance_sends_nothing_and_does_not_raise(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances of the timer read the same progress: the one whose conditional write loses skips its tick
    (raising would have its retry send too); the first wrote last used to win, and both sent."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    generate = user_function("generate_sensors")
    generate(timer=None, context=FIRST)
    other = LocalLake(tmp_path)
    real = LocalLake.read_versioned

    def read_then_other_instance_writes(self: LocalLake, path: str) -> tuple[bytes, str] | None:
        found = real(self, path)
        assert found is not None
        progress = json.loads(found[0])
        progress["pending"]["owner"] = "other"  # e.g. the other instance's resend, recorded acknowledged
        progress["pending"]["acknowledged"] = True
        other.write_if(path, json.dumps(progress).encode(), found[1])
        return found

    monkeypatch.setattr(LocalLake, "read_versioned", read_then_other_instance_writes)
    generate(timer=None, context=FIRST)
    assert len(sends.attempts) == 1
    assert _progress(tmp_path, "sensors")["pending"]["owner"] == "other"  # not overwritten


def test_a_tick_another_process_left_pending_is_sent_again_once_and_recorded_acknowledged(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances ticking in turn (a lost singleton lock): each tick is confirmed only once delivered."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "10")
    generate = user_function("generate_sensors")
    generate(timer=None, context=FIRST)  # A: records 0-9, delivered; A alone knows it
    memory_a = generator_functions._delivered
    _restart(monkeypatch, "B")
    generate(timer=None, context=FIRST)  # B cannot know: sends 0-9 again, records them acknowledged, then 10-19
    assert sends.attempts[1] == sends.attempts[0] and len(sends.attempts) == 3
    progress = _progress(tmp_path, "sensors")
    assert (progress["sent"], progress["pending"]["start"], progress["pending"]["owner"]) == (10, 10, "B")
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "A")
    monkeypatch.setattr(generator_functions, "_delivered", memory_a)
    generate(timer=None, context=FIRST)  # A cannot know B delivered 10-19: again, acknowledged, then 20-29
    assert _progress(tmp_path, "sensors")["sent"] == 20 and len(set(sends.values)) == 30
    assert len(sends.values) == 50  # each tick twice: instances ticking in turn, each fire sends a tick of its own


def test_a_fire_on_a_new_process_sends_a_tick_of_its_own_after_the_one_it_finds_pending(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 15: only a process's memory proves its last tick delivered, so a fire on a new process (Flex scaled in
    between ticks, a rare schedule) sends the pending tick again; it then sent nothing of its own, so with a new
    process every fire, every tick went twice and half the fires sent nothing new: half the rate."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "5")
    generate = user_function("generate_sensors")
    for fire in range(4):
        _restart(monkeypatch, f"process-{fire}")
        generate(timer=None, context=FIRST)
    assert len(set(sends.values)) == 20, "four fires, four ticks of their own"
    assert _progress(tmp_path, "sensors")["sent"] == 15  # the last tick pending, as always


def test_a_retry_after_another_instance_delivered_the_failed_tick_does_not_send_it_again(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C's send fails; A delivers the tick and records it acknowledged; C's retry goes on with the next tick."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "10")
    generate = user_function("generate_sensors")
    _restart(monkeypatch, "C")
    sends.fail_next = 1
    with pytest.raises(TransientError):
        generate(timer=None, context=FIRST)
    memory_c = generator_functions._delivered
    _restart(monkeypatch, "A")
    generate(timer=None, context=FIRST)
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "C")
    monkeypatch.setattr(generator_functions, "_delivered", memory_c)
    generate(timer=None, context=_retry(1))  # A's own tick 10-19 again (C cannot know), then 20-29
    first, by_a, *later = sends.attempts
    assert by_a == first and not any(set(attempt) & set(first) for attempt in later)
    assert _progress(tmp_path, "sensors")["sent"] == 20


def test_a_seed_the_progress_file_cannot_hold_is_a_settings_error_naming_it_and_nothing_is_sent(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unbounded seed failed at orjson.dumps (64 bits) before every send: every tick, forever."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", str(2**64))
    with pytest.raises(ConfigurationError, match="SENSORS_GENERATOR_SEED: Input should be less than"):
        user_function("generate_sensors")(timer=None, context=FIRST)
    assert not sends.attempts and not (tmp_path / "_generator").exists()


class _ThroughputBoundBroker:
    """``kafka_clients.send`` against a broker that acknowledges at most ``capacity`` records of a send before the
    send gives up (Event Hubs at 1 TU: 1,000 events/s, about 45,000 records within librdkafka's 45 s message
    timeout): the first ``capacity`` records are delivered, the rest time out and the send raises. ``fail``: sends
    (numbered from 0) that fail after delivering ``partly`` of their records, as a broker outage would."""

    def __init__(self, capacity: int = 10**9, fail: frozenset[int] = frozenset(), partly: int = 0) -> None:
        self.capacity, self.fail, self.partly = capacity, fail, partly
        self.sends: list[list[bytes]] = []
        self.delivered: list[bytes] = []

    def __call__(self, _config: Any, topic: str, records: Any) -> None:
        number = len(self.sends)
        self.sends.append([record.value for record in records])
        taken = min(self.capacity, self.partly if number in self.fail else len(records))
        self.delivered.extend(record.value for record in records[:taken])
        if taken < len(records):
            raise TransientError(f"{topic}: 0 failed, {len(records) - taken} unacknowledged of {len(records)}")


def _tick_records(source: str, progress: dict[str, Any], piece: int) -> list[bytes]:
    """The pending tick's records, in pieces of ``piece`` records, each generated from the tick's seed and time and
    its own first index (no trace headers: nothing is traced here)."""
    pending = progress["pending"]
    start, count, now = pending["start"], pending["count"], datetime.fromisoformat(pending["now"])
    return [
        message.value.encode()
        for first in range(start, start + count, piece)
        for message in generate_messages(
            get_source(source), min(piece, start + count - first), now=now, seed=pending["seed"], start_index=first
        )
    ]


def test_a_tick_larger_than_the_broker_takes_within_a_send_goes_in_pieces_and_completes(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tick the broker could not take within one send was retried whole, forever: each attempt delivered its
    first part again (45,000 duplicates a minute at 1 TU) and nothing was ever counted. Scaled down: ticks of 100
    records, pieces of 40, a broker taking 45 a send."""
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 40)
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "100")
    broker = _ThroughputBoundBroker(capacity=45)
    monkeypatch.setattr(kafka_clients, "send", broker)
    generate = user_function("generate_sensors")
    generate(timer=None, context=FIRST)
    assert [len(values) for values in broker.sends] == [40, 40, 20]
    assert broker.delivered == _tick_records("sensors", _progress(tmp_path, "sensors"), 40)
    generate(timer=None, context=FIRST)
    assert _progress(tmp_path, "sensors")["sent"] == 100
    assert len(broker.delivered) == len(set(broker.delivered)) == 200


def test_a_failed_piece_alone_is_sent_again_and_a_restart_resumes_at_the_first_piece_not_delivered(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each piece is recorded delivered before the next is sent: the retry of a failed piece sends it, with the same
    records, and what follows; a new process does the same; the pieces before are not sent again."""
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 10)
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "35")
    broker = _ThroughputBoundBroker(fail=frozenset({1, 3}), partly=4)  # pieces 10-19 and, on retry, 20-29 fail
    monkeypatch.setattr(kafka_clients, "send", broker)
    counting = _CountingLake(tmp_path)
    monkeypatch.setattr(generator_functions, "lake", lambda: counting)
    generate = user_function("generate_sensors")
    with pytest.raises(TransientError):
        generate(timer=None, context=FIRST)  # 0-9 delivered and recorded; 10-13 delivered, then the send fails
    assert counting.calls == ["read_versioned", "write_if", "write_if"]
    assert _progress(tmp_path, "sensors")["pending"]["delivered"] == 10
    with pytest.raises(TransientError):
        generate(timer=None, context=_retry(1))  # 10-19 again, recorded; 20-23 delivered, then the send fails
    _restart(monkeypatch, "restarted")
    left = _progress(tmp_path, "sensors")
    generate(timer=None, context=FIRST)  # 20-29 and 30-34, records them acknowledged, then a tick of its own
    expected = _tick_records("sensors", left, 10)
    assert broker.sends[:6] == [
        expected[0:10],
        expected[10:20],
        expected[10:20],
        expected[20:30],
        expected[20:30],
        expected[30:35],
    ]
    assert broker.delivered[:43] == expected[:14] + expected[10:24] + expected[20:35]  # a failed piece's part twice
    progress = _progress(tmp_path, "sensors")
    assert (progress["sent"], progress["pending"]["start"]) == (35, 35)  # the restarted fire's own tick went too
    assert len(broker.delivered) == 43 + 35 and not set(broker.delivered[43:]) & set(expected)


def test_a_tick_another_instance_delivered_whole_meanwhile_is_not_sent_further(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 10)
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "30")
    other = LocalLake(tmp_path)

    def send_while_another_instance_finishes(_config: Any, _topic: str, records: Any) -> None:
        sends.attempts.append([(record.key, record.value) for record in records])
        progress = _progress(tmp_path, "sensors")
        progress["pending"] |= {"owner": "other", "acknowledged": True}  # it sent the tick and recorded so
        found = other.read_versioned("_generator/sensors.json")
        assert found is not None
        other.write_if("_generator/sensors.json", json.dumps(progress).encode(), found[1])

    monkeypatch.setattr(kafka_clients, "send", send_while_another_instance_finishes)
    user_function("generate_sensors")(timer=None, context=FIRST)
    assert len(sends.attempts) == 1  # its first piece; the rest is delivered
    assert "delivered" not in _progress(tmp_path, "sensors")["pending"]


def test_a_record_too_large_for_the_broker_fails_naming_the_source_the_record_and_its_size(
    sends: _Sends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record the broker refuses for its size failed as a TransientError, retried as if it could pass."""
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 10)
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "30")

    def refuse_the_fourth_of_the_second_piece(_config: Any, topic: str, records: Any) -> None:
        sends.attempts.append([(record.key, record.value) for record in records])
        if len(sends.attempts) == 2:
            raise kafka_clients.RecordTooLarge(f"{topic}: record 3 too large", index=3, size=1_234_567)

    monkeypatch.setattr(kafka_clients, "send", refuse_the_fourth_of_the_second_piece)
    with pytest.raises(kafka_clients.RecordTooLarge) as raised:
        user_function("generate_sensors")(timer=None, context=FIRST)
    assert not isinstance(raised.value, TransientError)
    assert str(raised.value).startswith("generate_sensors: record 13 (1,234,567 bytes of key, value and headers)")
    assert (raised.value.index, raised.value.size) == (13, 1_234_567)


def test_the_retries_after_a_record_too_large_send_it_alone_not_its_pieces_other_records_again(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review 15: the broker refused record 13 for its size and took the piece's others; every retry (every 5 s, for
    ever) sent the whole piece again, so its nine other records went out once more each time. The records before it
    were delivered, and the retries send it alone."""
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 10)
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "30")
    delivered: list[tuple[str | None, bytes]] = []
    refused: list[tuple[str | None, bytes]] = []

    def refuse_one_record_for_its_size(_config: Any, topic: str, records: Any) -> None:
        sent = [(record.key, record.value) for record in records]
        sends.attempts.append(sent)
        if not refused and len(sends.attempts) == 2:
            refused.append(sent[3])
        if refused and refused[0] in sent:
            index = sent.index(refused[0])
            delivered.extend(record for record in sent if record != refused[0])
            raise kafka_clients.RecordTooLarge(f"{topic}: too large", index=index, size=2_000_000, alone=True)
        delivered.extend(sent)

    monkeypatch.setattr(kafka_clients, "send", refuse_one_record_for_its_size)
    generate = user_function("generate_sensors")
    for attempt in range(5):
        with pytest.raises(kafka_clients.RecordTooLarge, match="record 13 "):
            generate(timer=None, context=_retry(attempt) if attempt else FIRST)
    assert [len(attempt) for attempt in sends.attempts] == [10, 10, 1, 1, 1, 1]
    assert len(delivered) == len(set(delivered)) == 19, "each record the broker took, once"
    refused.clear()  # the topic's limit raised: the record goes, and the tick goes on after its piece
    generate(timer=None, context=_retry(5))
    assert [len(attempt) for attempt in sends.attempts[6:]] == [1, 10]
    assert len(delivered) == len(set(delivered)) == 30


def test_an_untracked_generator_sends_a_large_tick_in_pieces_and_keeps_nothing(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(generator_ticks, "PIECE_RECORDS", 10)
    monkeypatch.delenv("SENSORS_GENERATOR_SEED", raising=False)
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "25")
    user_function("generate_sensors")(timer=None, context=FIRST)
    assert [len(attempt) for attempt in sends.attempts] == [10, 10, 5] and len(set(sends.values)) == 25
    assert not (tmp_path / "_generator").exists()
