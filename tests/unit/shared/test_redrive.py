"""Redrive decisions without a broker: the whole path decides what passes, raw and the redrive log what is sent."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import json
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from shared import formats
from shared.batch import process_batch
from shared.dead_letters import DeadLetter, Reason
from shared.errors import LakeUnavailable, RedriveInProgress, UnreadableLakeFile
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS, dead_letter_row
from shared.landing.isolation import Unencodable
from shared.landing.partition import CLOCK_SKEW_SECONDS
from shared.landing.raw_rows import raw_rows
from shared.records import KafkaRecord
from shared.redrive import (
    REDRIVE_LEASE_SECONDS,
    REDRIVE_LOG_COLUMNS,
    Delivery,
    OutgoingRedrive,
    RedriveTarget,
    lease_path,
    read_dead_letters,
    redrive,
    redrive_log,
    take_lease,
)
from shared.schema_registry.client import RegistrySchema, UnknownSchema
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.encoder import AvroEncoder
from shared.schema_registry.wire import RegistryKind
from shared.sources import SOURCES
from shared.state.aggregate import Signal, members
from shared.state.buckets import bucket_for
from tests.conftest import FIXED_NOW_MS, context_for, records_for
from tests.unit.shared.schema_registry.conftest import avro_source, generated

ORDER = (
    b'{"ordertime":1,"orderid":%d,"itemid":"Item_1","orderunits":1.5,"address":{"city":"C","state":"S","zipcode":1}}'
)
ORDERS = RedriveTarget("orders", max_record_bytes=1000)
ORDER_WITH_UNKNOWN_FIELDS = (
    b'{"ordertime":1,"orderid":7,"itemid":"Item_1","orderunits":1.5,'
    b'"address":{"city":"C","state":"S","zipcode":1,"country":"NO"},"coupon":{"code":"X","uses":[1,2]}}'
)


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[OutgoingRedrive] = []

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[bool]:
        self.sent.extend(messages)
        return [True] * len(messages)


class RecordingSignaller:
    def __init__(self) -> None:
        self.signals: list[Signal] = []

    def signal(self, signals: Sequence[Signal]) -> list[bool]:
        self.signals.extend(signals)
        return [True] * len(signals)


def _dead_letters(lake: LocalLake, now_ms: int) -> None:
    records = [
        KafkaRecord("orders", 0, 0, "0", b"", FIXED_NOW_MS),  # null_value: never passes
        KafkaRecord("orders", 0, 1, "1", b"{oops", FIXED_NOW_MS),  # not_json
        KafkaRecord("orders", 0, 2, "2", b"\xff\xfe", FIXED_NOW_MS),  # not_utf8
    ]
    handle_batch(context_for(SOURCES["orders"], lake, now_ms=now_ms), records)


def _letter_rows(lake: LocalLake, rows: list[dict[str, object]], name: str) -> None:
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, rows, record_name="x")
    lake.write_atomic(f"deadletter/orders/date=2026-11-24/hour=10/{name}.jsonl.gz", data)


def _valid_dead_letter_rows(
    lake: LocalLake, offsets: range, now_ms: int, incarnation: int = 0, reason: str = "schema"
) -> None:
    """Dead letters of records that pass today (they failed under an older model)."""
    rows: list[dict[str, object]] = [
        {
            "_topic": "orders",
            "_partition": 1,
            "_incarnation": incarnation,
            "_offset": offset,
            "_key": str(offset),
            "_kafka_timestamp": FIXED_NOW_MS,
            "reason": reason,
            "detail": "orderunits: older model wanted an int",
            "raw_base64": base64.b64encode(ORDER % offset).decode(),
            "dead_lettered_at": now_ms,
        }
        for offset in offsets
    ]
    _letter_rows(lake, rows, f"orders+1+i{incarnation}+{offsets[0]:020d}+{offsets[-1]:020d}.{reason}")


def test_dry_run_counts_filters_and_reasons(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _dead_letters(lake, FIXED_NOW_MS)
    _valid_dead_letter_rows(lake, range(10, 14), FIXED_NOW_MS + 60_000)
    assert len(read_dead_letters(lake, "orders")) == 7
    everything = redrive(SOURCES["orders"], lake=lake, target=ORDERS, dry_run=True)
    assert (everything.read, everything.now_valid, everything.sent) == (7, 4, 0)
    assert dict(everything.still_invalid) == {"null_value": 1, "not_json": 1, "not_utf8": 1}
    only_json = redrive(SOURCES["orders"], lake=lake, target=ORDERS, reasons=frozenset({"not_json"}), dry_run=True)
    assert (only_json.filtered_out, only_json.now_valid, dict(only_json.still_invalid)) == (6, 0, {"not_json": 1})
    recent = redrive(SOURCES["orders"], lake=lake, target=ORDERS, since_ms=FIXED_NOW_MS + 1, dry_run=True)
    assert (recent.filtered_out, recent.now_valid) == (3, 4)
    assert "still invalid: not_utf8" in everything.table()


def test_an_unconfirmed_send_is_never_repeated(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(20, 23), FIXED_NOW_MS)
    intent = [{"_topic": "orders", "_partition": 1, "_incarnation": 0, "_offset": 21, "redriven_at": FIXED_NOW_MS}]
    lake.write_atomic(
        "_redrive/orders/r1.intent.jsonl.gz", formats.encode("jsonl", REDRIVE_LOG_COLUMNS, intent, record_name="r")
    )
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, dry_run=True)
    assert (summary.unconfirmed, summary.now_valid) == (1, 2)


class AnsweringSender:
    """Answers each message with the next of ``answers`` (a sender that saw some refused, some unanswered)."""

    def __init__(self, *answers: Delivery) -> None:
        self.answers, self.sent = list(answers), list[OutgoingRedrive]()

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[Delivery]:
        self.sent.extend(messages)
        return [self.answers.pop(0) if self.answers else Delivery.ACKNOWLEDGED for _ in messages]


def test_a_send_refused_before_it_was_appended_is_sent_again_and_an_unanswered_one_never(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(40, 43), FIXED_NOW_MS)
    first = AnsweringSender(Delivery.ACKNOWLEDGED, Delivery.NOT_SENT, Delivery.UNKNOWN)
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=first)
    assert (summary.sent, summary.not_sent, summary.failed) == (1, 1, 1)
    second = AnsweringSender()
    again = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=second)
    assert [message.entry.offset for message in second.sent] == [41]
    assert (again.sent, again.already_redriven, again.unconfirmed) == (1, 1, 1)
    third = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=AnsweringSender())
    assert (third.sent, third.already_redriven, third.unconfirmed) == (0, 2, 1)


def test_a_second_redrive_sends_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(30, 35), FIXED_NOW_MS)
    sender = RecordingSender()
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender).sent == 5
    again = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (again.sent, again.already_redriven, len(sender.sent)) == (0, 5, 5)
    assert sender.sent[0].headers == (("streamingpoc-redriven-from", b"orders/1/30"),)


def test_dead_letters_at_one_offset_of_two_incarnations_are_two_dead_letters(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(5, 6), FIXED_NOW_MS, incarnation=0)
    _valid_dead_letter_rows(lake, range(5, 6), FIXED_NOW_MS, incarnation=1)
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (summary.read, summary.sent) == (2, 2)
    assert sorted(m.headers[0][1] for m in sender.sent) == [b"orders/1/5", b"orders/1/i1/5"]
    assert redrive_log(lake, "orders")[0] == {("orders", 1, 0, 5), ("orders", 1, 1, 5)}
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender).already_redriven == 2


def test_a_redrive_log_written_before_incarnations_reads_as_incarnation_0(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(40, 42), FIXED_NOW_MS)
    old = [{"_topic": "orders", "_partition": 1, "_offset": 40, "redriven_at": FIXED_NOW_MS}]
    old_columns = tuple(column for column in REDRIVE_LOG_COLUMNS if column.name != "_incarnation")
    lake.write_atomic("_redrive/orders/r0.sent.jsonl.gz", formats.encode("jsonl", old_columns, old, record_name="r"))
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=RecordingSender())
    assert (summary.already_redriven, summary.sent) == (1, 1)


def test_a_dead_letter_whose_record_is_in_raw_is_not_sent(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    records = [KafkaRecord("orders", 1, offset, str(offset), ORDER % offset, FIXED_NOW_MS) for offset in range(50, 53)]
    handle_batch(context_for(SOURCES["orders"], lake), records)
    _valid_dead_letter_rows(lake, range(51, 54), FIXED_NOW_MS)  # 51 and 52 landed in raw; 53 did not
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (summary.already_in_raw, summary.sent) == (2, 1)
    assert [message.entry.offset for message in sender.sent] == [53]


def test_letters_that_still_fail_their_key_or_encoder_are_not_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    good = records_for(mobile, 3)
    bad_key = good[0].value.replace(good[0].key.encode(), ("é" * 100).encode())  # type: ignore[union-attr]
    rows: list[dict[str, object]] = [
        {
            "_topic": "mobile",
            "_partition": 0,
            "_incarnation": 0,
            "_offset": offset,
            "_key": "k",
            "_kafka_timestamp": FIXED_NOW_MS,
            "reason": reason,
            "detail": "-",
            "raw_base64": base64.b64encode(value).decode(),
            "dead_lettered_at": FIXED_NOW_MS,
        }
        for offset, reason, value in ((0, "bad_key", bad_key), (1, "unencodable", good[1].value or b""))
    ]
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, rows, record_name="x")
    lake.write_atomic("deadletter/mobile/date=2026-11-24/hour=10/mobile+0+i0+00000000000000000000+1.jsonl.gz", data)

    from shared.landing import files

    real = files.encode_isolating

    def refuses_offset_1(fmt, columns, rows, *, record_name):  # type: ignore[no-untyped-def]
        data, bad = real(fmt, columns, rows, record_name=record_name)
        refused = [Unencodable(i, "still refused") for i, row in enumerate(rows) if row["_offset"] == 1]
        return data, bad + refused

    monkeypatch.setattr(files, "encode_isolating", refuses_offset_1)
    target = RedriveTarget("mobile", max_record_bytes=1 << 20)
    summary = redrive(mobile, lake=lake, target=target, sender=RecordingSender())
    assert (summary.now_valid, summary.sent) == (0, 0)
    assert dict(summary.still_invalid) == {"bad_key": 1, "unencodable": 1}


def _mobile_letter_row(record: KafkaRecord, reason: str, detail: str) -> dict[str, object]:
    """A dead-letter row of mobile partition 0, life 0, for ``record`` (offset 1 in these tests)."""
    return {
        "_topic": "mobile",
        "_partition": 0,
        "_incarnation": 0,
        "_offset": record.offset,
        "_key": record.key,
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": reason,
        "detail": detail,
        "raw_base64": base64.b64encode(record.value or b"").decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }


def land_one_refused_state_update(lake: LocalLake) -> list[KafkaRecord]:
    """Lands three mobile records, then dead-letters offset 1 as ``entity_rejected``: landed in raw/,
    refused by its entity."""
    mobile = SOURCES["mobile"]
    records = records_for(mobile, 3)
    handle_batch(context_for(mobile, lake, now_ms=FIXED_NOW_MS), records)
    row = _mobile_letter_row(records[1], "entity_rejected", "landed in raw/, but the entity refused its update")
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    name = "mobile+0+i0+00000000000000000001+00000000000000000001.entity_rejected.jsonl.gz"
    lake.write_atomic(f"deadletter/mobile/date=2026-11-24/hour=10/{name}", data)
    return records


def test_refused_state_updates_are_re_applied_from_raw_not_produced_again(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    records = land_one_refused_state_update(lake)
    sender, signaller = RecordingSender(), RecordingSignaller()
    target = RedriveTarget("mobile", max_record_bytes=1 << 20, state_buckets=1024)
    summary = redrive(mobile, lake=lake, target=target, sender=sender, signaller=signaller)
    assert (summary.sent, summary.resignalled, sender.sent) == (0, 1, [])
    (signal,) = signaller.signals
    assert signal.key == bucket_for(records[1].key or "", 1024)
    assert list(members(signal)) == [(records[1].key, "mobile", 0, 1, 1)]
    (part,) = signal.payload["parts"]
    assert part["range"] == [1, 1] and [event[0] for event in part["keys"][records[1].key]] == [1]
    again = redrive(mobile, lake=lake, target=target, sender=sender, signaller=signaller)
    assert (again.already_redriven, again.resignalled, len(signaller.signals)) == (1, 0, 1)


def test_a_re_signal_carries_its_partitions_holes_so_it_closes_no_gap_a_rewind_may_fill(tmp_path: Path) -> None:
    """A re-signal marks its offset applied like any signal; its bucket must not close a gap the landing ledger
    has not landed (a group moved over it) to keep at most 32 ranges, so it carries the stored ledger's holes."""
    lake = LocalLake(tmp_path)
    records = land_one_refused_state_update(lake)
    later = [dataclasses.replace(record, offset=100 + index) for index, record in enumerate(records)]
    handle_batch(context_for(SOURCES["mobile"], LocalLake(tmp_path), now_ms=FIXED_NOW_MS), later)  # 3..99 moved over
    signaller = RecordingSignaller()
    target = RedriveTarget("mobile", max_record_bytes=1 << 20, state_buckets=1024)
    redrive(SOURCES["mobile"], lake=lake, target=target, sender=RecordingSender(), signaller=signaller)
    (signal,) = signaller.signals
    (part,) = signal.payload["parts"]
    assert part["holes"] == [[3, 99]]


def test_a_re_signalled_event_from_a_clock_far_ahead_is_taken_as_now_as_processing_takes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shared.redrive

    lake = LocalLake(tmp_path)
    records = land_one_refused_state_update(lake)  # its row's event time: FIXED_NOW_MS
    long_before = FIXED_NOW_MS - 30 * 24 * 3_600_000  # the tool's clock a month earlier: the row is far ahead of it
    monkeypatch.setattr(shared.redrive.time, "time", lambda: long_before / 1000)
    signaller = RecordingSignaller()
    target = RedriveTarget("mobile", max_record_bytes=1 << 20, state_buckets=1024)
    redrive(SOURCES["mobile"], lake=lake, target=target, sender=RecordingSender(), signaller=signaller)
    (signal,) = signaller.signals
    (part,) = signal.payload["parts"]
    assert [event[1] for event in part["keys"][records[1].key]] == [long_before]


def test_a_redriven_record_keeps_its_unknown_fields(tmp_path: Path) -> None:
    """Redrive sends a dead letter's bytes as they came, so the redriven record lands with its unknown
    fields in ``_extra``."""
    lake = LocalLake(tmp_path)
    row = {
        "_topic": "orders",
        "_partition": 0,
        "_offset": 3,
        "_key": "7",
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "schema",
        "detail": "orderunits: an older model wanted an int",
        "raw_base64": base64.b64encode(ORDER_WITH_UNKNOWN_FIELDS).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.write_atomic(f"deadletter/orders/date=2026-11-24/hour=10/orders+0+{3:020d}+{3:020d}.jsonl.gz", data)
    sender = RecordingSender()
    target = RedriveTarget("orders", max_record_bytes=10_000)
    summary = redrive(SOURCES["orders"], lake=lake, target=target, sender=sender)
    assert summary.sent == 1
    (message,) = sender.sent
    assert message.value == ORDER_WITH_UNKNOWN_FIELDS
    redriven = KafkaRecord("orders", 1, 100, message.key, message.value, FIXED_NOW_MS)
    (landed,) = process_batch(SOURCES["orders"], [redriven], max_record_bytes=10_000).rows()
    assert json.loads(landed["_extra"]) == {"coupon": {"code": "X", "uses": [1, 2]}, "address.country": "NO"}


class RefusingSignaller(RecordingSignaller):
    """The entity API does not accept the signals (down, or a 5xx): nothing was applied."""

    def signal(self, signals: Sequence[Signal]) -> list[bool]:
        self.signals.extend(signals)
        return [False] * len(signals)


def test_a_re_signal_that_failed_is_re_applied_by_the_next_redrive(tmp_path: Path) -> None:
    """Re-applying a refused update is idempotent (entities apply an offset once), so a re-signal the entity
    API did not accept must be tried again; it is not a produce that could land twice."""
    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    land_one_refused_state_update(lake)
    target = RedriveTarget("mobile", max_record_bytes=1 << 20, state_buckets=1024)
    failed = redrive(mobile, lake=lake, target=target, signaller=RefusingSignaller())
    assert (failed.resignalled, failed.resignal_failed) == (0, 1)
    signaller = RecordingSignaller()
    again = redrive(mobile, lake=lake, target=target, signaller=signaller)
    assert (again.resignalled, len(signaller.signals)) == (1, 1), again.table()


class InterleavingLake(LocalLake):
    """Runs ``during`` once, when the redrive looks in raw/: after it read the redrive log, before its intent."""

    during: Callable[[], None] | None = None

    def list_paths(self, prefix: str) -> list[str]:
        if prefix.startswith("raw/") and self.during is not None:
            during, self.during = self.during, None
            during()
        return super().list_paths(prefix)


def test_two_concurrent_redrives_send_each_dead_letter_once(tmp_path: Path) -> None:
    """Two runs at once (two operators, a scheduled and a manual run) both read the redrive log before either
    wrote its intent: only the lease keeps the second from sending every dead letter again."""
    lake = InterleavingLake(tmp_path)
    _valid_dead_letter_rows(lake, range(3), FIXED_NOW_MS)
    sender = RecordingSender()
    refusals: list[RedriveInProgress] = []

    def second_run() -> None:
        try:
            redrive(SOURCES["orders"], lake=LocalLake(tmp_path), target=ORDERS, sender=sender)
        except RedriveInProgress as refused:
            refusals.append(refused)

    lake.during = second_run
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sorted(message.entry.offset for message in sender.sent) == [0, 1, 2]
    assert summary.sent == 3 and len(refusals) == 1
    assert "another redrive of orders is running" in str(refusals[0])


def test_a_lease_held_by_a_live_run_stops_the_next_one_before_it_sends(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(60, 62), FIXED_NOW_MS)
    take_lease(lake, "orders", "running-run")  # its run is still going, or crashed less than a lease ago
    sender = RecordingSender()
    with pytest.raises(RedriveInProgress, match="running-run"):
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sender.sent == [] and redrive_log(lake, "orders") == (set(), set())


def test_the_lease_of_a_crashed_run_is_taken_over_once_it_expired(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(70, 73), FIXED_NOW_MS)
    take_lease(lake, "orders", "crashed-run", clock=lambda: time.time() - REDRIVE_LEASE_SECONDS - 60)  # never released
    sender = RecordingSender()
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender).sent == 3
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender).already_redriven == 3  # released


def test_a_lease_is_held_until_its_end_plus_the_clock_skew_and_taken_over_after(tmp_path: Path) -> None:
    """Another host's clock may run up to CLOCK_SKEW_SECONDS ahead of the holder's. Counted as ending the skew before
    its end, the lease was taken 1.5 s early by the holder's own clock, while the holder could still be writing its
    intent: both runs sent every dead letter."""

    def at(moment: float) -> Callable[[], float]:
        return lambda: moment

    lake = LocalLake(tmp_path)
    start = FIXED_NOW_MS / 1000
    held = take_lease(lake, "orders", "first-run", clock=at(start))
    end = start + held.seconds
    for moment in (end - 1.5, end, end + CLOCK_SKEW_SECONDS - 0.01):
        with pytest.raises(RedriveInProgress, match="first-run"):
            take_lease(lake, "orders", "second-run", clock=at(moment))
    take_lease(lake, "orders", "second-run", clock=at(end + CLOCK_SKEW_SECONDS))
    with pytest.raises(RedriveInProgress, match="took over"):
        held.fence()


def test_a_run_whose_lease_was_taken_over_before_it_sent_sends_nothing(tmp_path: Path) -> None:
    """A run slower than its lease: another run took it over (it had expired) while this one was checking."""
    lake = InterleavingLake(tmp_path)
    _valid_dead_letter_rows(lake, range(80, 82), FIXED_NOW_MS)
    later = time.time() + REDRIVE_LEASE_SECONDS + 60

    def next_run_takes_the_expired_lease() -> None:
        take_lease(LocalLake(tmp_path), "orders", "next-run", clock=lambda: later)

    lake.during = next_run_takes_the_expired_lease
    sender = RecordingSender()
    with pytest.raises(RedriveInProgress, match="took over"):
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sender.sent == [] and redrive_log(lake, "orders") == (set(), set())


def test_with_state_off_a_key_no_entity_takes_is_redriven_as_processing_lands_it(tmp_path: Path) -> None:
    """Processing checks entity keys only when the source's state is on; redrive checks them the same way."""
    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    (good,) = records_for(mobile, 1)
    value = (good.value or b"").replace((good.key or "").encode(), ("é" * 100).encode())
    row: dict[str, object] = {
        "_topic": "mobile",
        "_partition": 0,
        "_incarnation": 0,
        "_offset": 0,
        "_key": "k",
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "bad_key",
        "detail": "-",
        "raw_base64": base64.b64encode(value).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.write_atomic("deadletter/mobile/date=2026-11-24/hour=10/mobile+0+i0+00000000000000000000+0.jsonl.gz", data)
    state_on = redrive(mobile, lake=lake, target=RedriveTarget("mobile", 1 << 20, state_buckets=8), dry_run=True)
    assert (state_on.now_valid, dict(state_on.still_invalid)) == (0, {"bad_key": 1})
    target = RedriveTarget("mobile", 1 << 20, state_buckets=8, state_enabled=False)
    assert redrive(mobile, lake=lake, target=target, dry_run=True).now_valid == 1


UNREADABLE = {
    "truncated gzip": lambda good: good[: len(good) // 2],
    "not gzip": lambda good: b"not gzip at all",
    "emptied to no bytes": lambda good: b"",
    "a line that is not JSON": lambda good: gzip.compress(b"{oops\n"),
    "a row without the columns": lambda good: gzip.compress(b'{"hello": "world"}\n'),
    "an offset that is not a number": lambda good: gzip.compress(b'{"_topic":"orders","_partition":1,"_offset":"x"}\n'),
    "a line that is not an object": lambda good: gzip.compress(b"[1, 2]\n"),
}


@pytest.mark.parametrize("damage", sorted(UNREADABLE))
def test_an_unreadable_dead_letter_file_is_named_and_left_out_and_the_rest_go(tmp_path: Path, damage: str) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    (good_path,) = lake.list_paths("deadletter/orders")
    bad_path = f"deadletter/orders/date=2026-11-24/hour=10/orders+1+i0+{99:020d}+{99:020d}.schema.jsonl.gz"
    lake.write_atomic(bad_path, UNREADABLE[damage](lake.read(good_path)))
    with pytest.raises(UnreadableLakeFile, match=re.escape(bad_path)):
        read_dead_letters(lake, "orders")
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (summary.sent, len(summary.unreadable)) == (3, 1) and summary.unreadable[0].startswith(bad_path)
    assert f"unreadable: {bad_path}" in summary.table()


@pytest.mark.parametrize("damaged", [b"not gzip", b""])
def test_an_unreadable_redrive_log_stops_the_run_before_it_sends(tmp_path: Path, damaged: bytes) -> None:
    """Without the log what was sent is unknown: leaving the file out could send its records twice. A log
    emptied to no bytes is no empty log (the run writes a gzip stream, even of nothing)."""
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    lake.write_atomic("_redrive/orders/20261124T100000Z-abcd.sent.jsonl.gz", damaged)
    sender = RecordingSender()
    with pytest.raises(UnreadableLakeFile, match=r"20261124T100000Z-abcd\.sent"):
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sender.sent == []


class Killed(BaseException):
    """The worker process dies here (a deploy restarting the host)."""


class DyingLake(LocalLake):
    """Dies on creating the first path containing ``die_on``."""

    die_on: str | None = None

    def create(self, path: str, data: bytes) -> bool:
        if self.die_on is not None and self.die_on in path:
            self.die_on = None
            raise Killed(path)
        return super().create(path, data)


class CutLake(LocalLake):
    """The lake; the run is cut at its request that creates the redrive log ``<run>.<cut_at>.jsonl.gz``: killed
    there (``Killed``) or the lake failing (``LakeUnavailable``)."""

    cut_at: str | None = None
    cut_with: type[BaseException] = LakeUnavailable

    def create(self, path: str, data: bytes) -> bool:
        if self.cut_at is not None and path.startswith("_redrive/") and path.endswith(f".{self.cut_at}.jsonl.gz"):
            self.cut_at = None
            raise self.cut_with(f"cut at {path}")
        return super().create(path, data)


@pytest.mark.parametrize("cut_with", [LakeUnavailable, Killed])
@pytest.mark.parametrize(
    ("cut_at", "sent_by_the_rerun", "unconfirmed"),
    [
        ("intent", [40, 41, 42], 0),  # before sending: nothing left the process
        ("unsent", [], 3),  # what was not sent died with the run: every letter unconfirmed, none sent twice
        ("sent", [41], 2),  # between the two outcome logs: the review's case
        (None, [41], 1),  # not cut: 40 acknowledged, 42 unanswered
    ],
)
def test_letters_the_broker_never_took_are_sent_by_the_rerun(
    tmp_path: Path,
    cut_at: str | None,
    sent_by_the_rerun: list[int],
    unconfirmed: int,
    cut_with: type[BaseException],
) -> None:
    """Review: a run wrote its ``sent`` log first, ``unsent`` after. Cut between those two lake requests (a kill,
    a lake blip), its intent stood with neither confirmation, and every later run counted the letters the broker
    never took as "unconfirmed earlier send" and never sent them. Wherever a run is cut, a letter acknowledged is
    never sent again, and one certainly not sent is sent by the rerun once the run has logged it as such."""
    _valid_dead_letter_rows(LocalLake(tmp_path), range(40, 43), FIXED_NOW_MS)
    lake = CutLake(tmp_path)
    lake.cut_at, lake.cut_with = cut_at, cut_with
    first = AnsweringSender(Delivery.ACKNOWLEDGED, Delivery.NOT_SENT, Delivery.UNKNOWN)
    if cut_at is None:
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=first)
    else:
        with pytest.raises(cut_with, match=f"cut at .*[.]{cut_at}[.]"):
            redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=first)
    assert [m.entry.offset for m in first.sent] == ([] if cut_at == "intent" else [40, 41, 42])

    rerun = AnsweringSender()
    summary = redrive(SOURCES["orders"], lake=LocalLake(tmp_path), target=ORDERS, sender=rerun)
    assert sorted(m.entry.offset for m in rerun.sent) == sent_by_the_rerun, summary.table()
    assert summary.unconfirmed == unconfirmed, summary.table()
    third = AnsweringSender()
    redrive(SOURCES["orders"], lake=LocalLake(tmp_path), target=ORDERS, sender=third)
    assert third.sent == []


def test_a_run_none_of_whose_letters_the_broker_took_cut_before_its_sent_log_leaves_them_all_to_the_rerun(
    tmp_path: Path,
) -> None:
    """The review's own case: the broker unreachable, every letter ``NOT_SENT``, the run cut between its two
    outcome logs."""
    _valid_dead_letter_rows(LocalLake(tmp_path), range(40, 43), FIXED_NOW_MS)
    lake = CutLake(tmp_path)
    lake.cut_at = "sent"
    unreachable = AnsweringSender(Delivery.NOT_SENT, Delivery.NOT_SENT, Delivery.NOT_SENT)
    with pytest.raises(LakeUnavailable):
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=unreachable)
    rerun = AnsweringSender()
    summary = redrive(SOURCES["orders"], lake=LocalLake(tmp_path), target=ORDERS, sender=rerun)
    assert sorted(m.entry.offset for m in rerun.sent) == [40, 41, 42], summary.table()


BIG_ORDER = (ORDER % 1)[:-1] + b',"note":"' + b"x" * 300 + b'"}'  # too large for MAX_RECORD_BYTES 200
TWO_HOURS = [
    KafkaRecord("orders", 0, 0, "0", ORDER % 0, FIXED_NOW_MS),
    KafkaRecord("orders", 0, 1, "1", BIG_ORDER, FIXED_NOW_MS),  # oversized: the hour-10 dead-letter file
    KafkaRecord("orders", 0, 2, "2", ORDER % 2, FIXED_NOW_MS),
    KafkaRecord("orders", 0, 3, "3", b"{oops", FIXED_NOW_MS + 3_600_000),  # not_json: the hour-11 dead-letter file
]


def _raw_orderids(lake: LocalLake) -> list[int]:
    return sorted(
        row["orderid"] for path in lake.list_paths("raw/orders") for row in formats.decode("parquet", lake.read(path))
    )


def test_a_dead_letter_of_an_unfinished_landing_is_not_sent_and_its_record_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker dies between a landing's two dead-letter files. The operator raises MAX_RECORD_BYTES and redrives:
    record 1 passes now, but the partition's next owner, planning the landing anew, removes it and lands record 1
    in raw/. Sent too, it would land twice."""
    from shared.landing import guard as guard_module
    from shared.landing.guard import LandingGuard

    orders = SOURCES["orders"]
    dying = DyingLake(tmp_path)
    dying.die_on = "deadletter/orders/date=2026-11-24/hour=11/"
    with pytest.raises(Killed):
        handle_batch(context_for(orders, dying, settings={"MAX_RECORD_BYTES": "200"}), TWO_HOURS)
    (letters,) = LocalLake(tmp_path).list_paths("deadletter/orders")  # the hour-10 file only

    sender = RecordingSender()
    summary = redrive(orders, lake=LocalLake(tmp_path), target=RedriveTarget("orders", 100_000), sender=sender)
    assert (sender.sent, summary.pending_landing, summary.pending_files) == ([], 1, [letters]), summary.table()
    assert f"pending landing: not sent: {letters}" in summary.table()

    lake = LocalLake(tmp_path)  # the next owner, past the dead worker's landing lease
    monkeypatch.setitem(guard_module._guards, lake, LandingGuard(lake, clock=lambda: time.time() + 10_000))
    handle_batch(context_for(orders, lake, settings={"MAX_RECORD_BYTES": "100000"}), TWO_HOURS)
    assert _raw_orderids(lake) == [0, 1, 2]
    again = redrive(orders, lake=lake, target=RedriveTarget("orders", 100_000), sender=sender)
    assert (sender.sent, again.pending_landing, dict(again.still_invalid)) == ([], 0, {"not_json": 1}), again.table()


def test_the_dead_letters_of_a_finished_landing_its_ledger_still_names_are_sent(tmp_path: Path) -> None:
    """The stored ledger names a landing's files until the partition's next landing (an idle partition keeps the
    last one pending): once every file of it is there, whoever settles it next counts it landed."""
    from shared.landing.ledger import names_pending

    lake = LocalLake(tmp_path)
    handle_batch(context_for(SOURCES["orders"], lake, settings={"MAX_RECORD_BYTES": "200"}), TWO_HOURS)
    (raw,) = lake.list_paths("raw/orders")
    letters = lake.list_paths("deadletter/orders")
    ledger = json.loads(lake.read("_landing/orders/orders+0.json"))
    assert sorted(ledger["pending"]["files"]) == sorted([raw, *letters])  # dead-letter files included
    assert names_pending(lake, "orders", raw) and not names_pending(lake, "orders", raw, unless_complete=True)
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=RedriveTarget("orders", 100_000), sender=sender)
    assert [message.entry.offset for message in sender.sent] == [1] and summary.pending_landing == 0


def _being_removed(ledger: bytes) -> bytes:
    document = json.loads(ledger)
    document["pending"]["removing"] = True  # its holder is deleting its files, to land its records again
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "ledger",
    [_being_removed, lambda ledger: ledger[: len(ledger) // 2], lambda ledger: b'{"pending": []}'],
    ids=["being removed", "truncated", "not a ledger"],
)
def test_a_landing_being_removed_or_an_unreadable_ledger_keeps_the_letters_back(
    tmp_path: Path, ledger: Callable[[bytes], bytes]
) -> None:
    lake = LocalLake(tmp_path)
    handle_batch(context_for(SOURCES["orders"], lake, settings={"MAX_RECORD_BYTES": "200"}), TWO_HOURS)
    path = "_landing/orders/orders+0.json"
    lake.write_atomic(path, ledger(lake.read(path)))
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=RedriveTarget("orders", 100_000), sender=sender)
    assert (sender.sent, summary.pending_landing, len(summary.pending_files)) == ([], 2, 2), summary.table()


def test_a_row_a_promotion_removed_is_never_sent_even_once_its_raw_file_expired(tmp_path: Path) -> None:
    """A ``tools.reprocess --promote`` removed record 1's row from curated/ and wrote it as a ``.reprocessed-`` dead
    letter: its record landed and its entity counted it. raw/ expires (raw_retention_days) while dead letters are
    kept: sent, the record would land at a new offset and be counted twice. Its ``entity_rejected`` letter of the
    same record is still re-applied from raw/."""
    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    records = land_one_refused_state_update(lake)
    row = _mobile_letter_row(records[1], "schema", "tools.reprocess r1: a stricter model")
    name = f"mobile+0+i0+{1:020d}+{1:020d}.reprocessed-0123456789abcdef.jsonl.gz"  # as tools.reprocess names it
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.write_atomic(f"deadletter/mobile/date=2026-11-24/hour=10/{name}", data)
    target = RedriveTarget("mobile", max_record_bytes=1 << 20, state_buckets=8)
    sender, signaller = RecordingSender(), RecordingSignaller()
    summary = redrive(mobile, lake=lake, target=target, sender=sender, signaller=signaller)
    assert (summary.read, summary.reprocessed, summary.resignalled, sender.sent) == (2, 1, 1, []), summary.table()
    assert "removed by a promotion (never sent)" in summary.table()

    for path in lake.list_paths("raw/mobile"):  # the lifecycle rule, raw_retention_days later
        lake.delete(path)
    later = redrive(mobile, lake=lake, target=target, sender=sender, signaller=signaller)
    assert (later.reprocessed, later.now_valid, sender.sent) == (1, 0, []), later.table()


def _row(offset: int, **override: object) -> dict[str, object]:
    return {
        "_topic": "orders",
        "_partition": 1,
        "_incarnation": 0,
        "_offset": offset,
        "_key": str(offset),
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "schema",
        "detail": "older model",
        "raw_base64": base64.b64encode(ORDER % offset).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    } | override


FOREIGN_ROWS: dict[str, dict[str, object]] = {
    "negative offset": {"_offset": -1},
    "negative partition": {"_partition": -3},
    "negative incarnation": {"_incarnation": -1},
    "offset beyond a long": {"_offset": 2**63},
    "empty topic": {"_topic": ""},
    "topic too long for a path segment": {"_topic": "t" * 300},
    "digits of another script": {"_partition": "\u0661", "_offset": "\u0663\u0663"},
    "an offset with an underscore": {"_offset": "1_0"},
    "an offset with spaces": {"_offset": " 10 "},
    "an offset as a fraction": {"_offset": 10.0},
}


@pytest.mark.parametrize("damage", sorted(FOREIGN_ROWS))
def test_a_file_with_a_foreign_dead_letter_row_is_named_and_left_out_and_the_rest_go(
    tmp_path: Path, damage: str
) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    foreign = "deadletter/orders/date=2026-11-24/hour=10/foreign.jsonl.gz"
    lake.write_atomic(foreign, gzip.compress(json.dumps(_row(99, **FOREIGN_ROWS[damage])).encode() + b"\n"))
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert (summary.sent, len(summary.unreadable)) == (3, 1) and summary.unreadable[0].startswith(foreign)


class VanishingLake(LocalLake):
    """Deletes ``vanish`` right after listing deadletter/ (the lifecycle rule's daily run, or a partition's next
    owner removing an unfinished landing's files)."""

    vanish: str | None = None

    def list_paths(self, prefix: str) -> list[str]:
        listed = super().list_paths(prefix)
        if self.vanish is not None and prefix.startswith("deadletter/"):
            self.delete(self.vanish)
            self.vanish = None
        return listed


def test_a_dead_letter_file_the_lake_refuses_or_deleted_since_the_listing_is_named_and_the_rest_go(
    tmp_path: Path,
) -> None:
    lake = VanishingLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    refused = "deadletter/orders/date=2026-11-24/hour=10/copy of letters.jsonl.gz"  # an operator's copy beside them
    (tmp_path / refused).write_bytes(gzip.compress(json.dumps(_row(40)).encode() + b"\n"))
    gone = f"deadletter/orders/date=2026-11-24/hour=10/orders+1+i0+{50:020d}+{50:020d}.jsonl.gz"
    lake.write_atomic(gone, formats.encode("jsonl", DEADLETTER_COLUMNS, [_row(50)], record_name="x"))
    lake.vanish = gone
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sorted(message.entry.offset for message in sender.sent) == [10, 11, 12], summary.table()
    assert sorted(why.split(": ")[0] for why in summary.unreadable) == sorted([refused, gone])
    assert "does not exist" in summary.table() and "refusing lake path" in summary.table()


class FailingLake(LocalLake):
    """The lake is unavailable when ``failing`` is read (an outage, not the file's fault)."""

    failing = ""

    def read(self, path: str) -> bytes:
        if path == self.failing:
            raise LakeUnavailable(f"cannot read {path}: the storage account did not answer")
        return super().read(path)


def test_a_lake_outage_reading_a_dead_letter_file_fails_the_run_before_it_sends(tmp_path: Path) -> None:
    """Transient: the run fails, to be run again; leaving the file out would report a partial redrive as done."""
    lake = FailingLake(tmp_path)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    (lake.failing,) = lake.list_paths("deadletter/orders")
    sender = RecordingSender()
    with pytest.raises(LakeUnavailable):
        redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender)
    assert sender.sent == [] and redrive_log(lake, "orders") == (set(), set())


def test_a_letter_a_damaged_raw_file_may_hold_is_not_sent_and_named_and_the_rest_go(tmp_path: Path) -> None:
    """Offsets 0-2 landed as one landing: 0 and 2 in raw/, 1 dead-lettered. The raw file is damaged (compaction has
    not quarantined it yet): whether it holds record 1 is unknown, so record 1 is not sent."""
    lake = LocalLake(tmp_path)
    records = [
        KafkaRecord("orders", 1, 0, "0", ORDER % 0, FIXED_NOW_MS),
        KafkaRecord("orders", 1, 1, "1", BIG_ORDER, FIXED_NOW_MS),
        KafkaRecord("orders", 1, 2, "2", ORDER % 2, FIXED_NOW_MS),
    ]
    handle_batch(context_for(SOURCES["orders"], lake, settings={"MAX_RECORD_BYTES": "200"}), records)
    _valid_dead_letter_rows(lake, range(10, 13), FIXED_NOW_MS)
    (raw_path,) = lake.list_paths("raw/orders")
    lake.write_atomic(raw_path, lake.read(raw_path)[:40])
    sender = RecordingSender()
    summary = redrive(SOURCES["orders"], lake=lake, target=RedriveTarget("orders", 100_000), sender=sender)
    assert sorted(message.entry.offset for message in sender.sent) == [10, 11, 12], summary.table()
    assert summary.raw_unknown == 1 and summary.unknown[0].startswith(f"orders/1/1 (oversized): raw file {raw_path}: ")
    assert "unknown: not sent: orders/1/1" in summary.table()
    with pytest.raises(UnreadableLakeFile, match=re.escape(raw_path)):
        raw_rows(lake, "orders", [("orders", 1, 0, 1)])


class EventHubsRegistryKnowingItNow:
    """An Event Hubs Schema Registry that knows the schema its generator registered (ids travel in content-type)."""

    kind: RegistryKind = "eventhubs"
    max_call_seconds = 1.0
    schema_id = "0123456789abcdef0123456789abcdef"

    def __init__(self) -> None:
        self.schemas: dict[str, str] = {}

    def register(self, subject: str, schema: str) -> str:
        self.schemas[self.schema_id] = schema
        return self.schema_id

    def schema(self, schema_id: str) -> RegistrySchema:
        if schema_id not in self.schemas:
            raise UnknownSchema(schema_id)
        return RegistrySchema("AVRO", self.schemas[schema_id])


def test_an_event_hubs_registry_avro_letter_is_redriven_with_the_content_type_it_came_with(tmp_path: Path) -> None:
    """The dead-letter row keeps the record's content-type header (its schema id, for the Event Hubs registry), so
    an ``unknown_schema`` letter whose id the registry knows by now passes redrive's check and is sent with that
    header, once; a row written before the column was kept fails the check as ``not_avro`` and is never sent."""
    source, registry = avro_source(), EventHubsRegistryKnowingItNow()
    ((key, text),) = generated(source, 1)
    produced = AvroEncoder(source, registry, "orders").encode(key, text)
    ((_, content_type),) = produced.headers
    header = content_type.decode() if isinstance(content_type, bytes) else str(content_type)
    with_header = KafkaRecord("orders", 1, 5, key, produced.value, FIXED_NOW_MS, header)
    decoder = AvroDecoder(registry)
    assert len(process_batch(source, [with_header], max_record_bytes=1 << 20, decoder=decoder).rows()) == 1
    lake = LocalLake(tmp_path)
    letter = DeadLetter(with_header, Reason.UNKNOWN_SCHEMA, f"schema {registry.schema_id}: unknown to the registry")
    row = dead_letter_row(letter, FIXED_NOW_MS)
    assert row["content_type"] == header
    _letter_rows(lake, [row], f"orders+1+i0+{5:020d}+{5:020d}.unknown_schema")
    older = {name: value for name, value in row.items() if name != "content_type"} | {"_offset": 6}
    _letter_rows(lake, [older], f"orders+1+i0+{6:020d}+{6:020d}.unknown_schema")
    target = RedriveTarget("orders", max_record_bytes=1 << 20, decoder=decoder)
    sender = RecordingSender()
    summary = redrive(source, lake=lake, target=target, sender=sender)
    assert [(m.entry.offset, dict(m.headers).get("content-type")) for m in sender.sent] == [(5, header.encode())]
    assert dict(summary.still_invalid) == {"not_avro": 1}, summary.table()
    again = RecordingSender()
    redrive(source, lake=lake, target=target, sender=again)
    assert again.sent == []


@pytest.mark.parametrize(
    "stored",
    [
        b"[" * 100_000,
        b"{oops",
        b"[]",
        b'{"owner": "a"}',
        b'{"owner": "a", "host": "h", "expires_ms": 1e999}',
        b'{"owner": "a", "host": "h", "expires_ms": 99999999999999999999}',
        b'{"owner": "a", "host": "h", "expires_ms": -5}',
    ],
    ids=["deep", "text", "list", "part", "infinite end", "end past 9999", "negative end"],
)
def test_a_lease_file_damaged_outside_this_code_counts_as_free(tmp_path: Path, stored: bytes) -> None:
    """Not a lease record: taking it over is still conditional on what is stored. Nested past the parser's depth,
    or with an end no date can be built from, it was a traceback on every run (RecursionError, OverflowError,
    OSError)."""
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(90, 92), FIXED_NOW_MS)
    lake.create(lease_path("orders"), stored)
    sender = RecordingSender()
    assert redrive(SOURCES["orders"], lake=lake, target=ORDERS, sender=sender).sent == 2


@pytest.mark.parametrize("reasons", [frozenset(), frozenset({"schema"})], ids=["unfiltered", "filtered out"])
def test_a_run_holds_the_bytes_only_of_letters_it_may_send(tmp_path: Path, reasons: frozenset[str]) -> None:
    """Every letter's bytes were held, whatever the filter, then validated in one batch: 600 oversized letters,
    gzipped to 8 KB each, took 832 MB for a run whose filter left out every one (a review's measurement). A
    letter past the size limit is counted as still oversized without its bytes; a left-out one holds none."""
    import tracemalloc

    lake = LocalLake(tmp_path)
    size = ORDERS.max_record_bytes * 1000  # gzip keeps each file small; held, each is a megabyte
    letters = 60
    for offset in range(letters):
        handle_batch(context_for(SOURCES["orders"], lake), [KafkaRecord("orders", 0, offset, None, b"x" * size, 0)])
    tracemalloc.start()
    try:
        summary = redrive(SOURCES["orders"], lake=lake, target=ORDERS, reasons=reasons, dry_run=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert summary.read == letters and summary.sent == 0
    assert (summary.filtered_out, summary.still_invalid["oversized"]) == ((letters, 0) if reasons else (0, letters))
    # one file's letter at a time (orjson takes about 14 times a long line while it parses it), never all of them
    assert peak < letters * size / 2, f"{peak:,} bytes at the peak: about every letter's bytes at once"


def test_a_lost_record_of_bucket_counts_stops_the_run_before_it_sends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """N is read only to re-signal; read after sending, a lost record of it (``RecordLost``) stopped the run once its
    letters had gone, with no summary (the session's review). It is read before anything is sent."""
    from shared import redrive as redrive_module
    from shared.state.bucket_counts import RecordLost

    lake = LocalLake(tmp_path)
    mobile = SOURCES["mobile"]
    land_one_refused_state_update(lake)
    (valid,) = records_for(mobile, 1, first_offset=50)
    row = _mobile_letter_row(valid, "schema", "refused by an older model")
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.write_atomic("deadletter/mobile/date=2026-11-24/hour=10/mobile+0+i0+00000000000000000050.jsonl.gz", data)

    class Lost:
        def of(self, source: str) -> int:
            raise RecordLost(f"the record naming {source} is lost")

    monkeypatch.setattr(redrive_module, "bucket_counts", lambda *args: Lost())
    sender, signaller = RecordingSender(), RecordingSignaller()
    with pytest.raises(RecordLost):
        redrive(mobile, lake=lake, target=RedriveTarget("mobile", 1 << 20), sender=sender, signaller=signaller)
    assert sender.sent == [] and signaller.signals == []
