"""The Datagen stand-in: rates, iterations, seeds and the ticks' progress."""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
import pytest

from shared import generator_ticks
from shared.errors import UnreadableLakeFile
from shared.generator_ticks import (
    PIECE_BYTES,
    PIECE_RECORDS,
    Piece,
    Plan,
    Tick,
    acknowledged,
    generate_messages,
    message_bytes,
    needs_progress,
    pieces_delivered,
    plan_tick,
    read_progress,
    resume_point,
    tick_piece,
    tick_size,
)
from shared.settings import SourceSettings, load_source_settings
from shared.source_model import Source, record_validator
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS
from tests.unit.shared.datagen.conftest import field as avro_field
from tests.unit.shared.datagen.conftest import schema_source


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_same_seed_gives_the_same_events(name: str) -> None:
    source = get_source(name)
    first = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=0)
    again = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=0)
    other = generate_messages(source, 20, now=FIXED_NOW, seed=6, start_index=0)
    next_tick = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=20)
    assert first == again
    assert first != other
    assert first != next_tick


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_messages_are_keyed_by_entity_and_valid(name: str) -> None:
    source = get_source(name)
    messages = generate_messages(source, 30, now=FIXED_NOW, seed=None, start_index=0)
    assert len(messages) == 30  # an empty tick would pass every check below
    for message in messages:
        event = record_validator(source.model).validate_json(message.value)
        assert message.key == source.entity_key(source.transform(event))


def test_generated_timestamps_are_current() -> None:
    for name in ("clickstream", "mobile", "sensors"):
        source = get_source(name)
        messages = generate_messages(source, 5, now=FIXED_NOW, seed=1, start_index=0)
        times = [source.event_time_ms(record_validator(source.model).validate_json(m.value)) for m in messages]
        assert all(t is not None and FIXED_NOW_MS - 60_000 <= t <= FIXED_NOW_MS for t in times), name


def test_tick_size_follows_rate_iterations_and_switch() -> None:
    settings = load_source_settings(
        "mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40", "MOBILE_GENERATOR_ITERATIONS": "100"}
    )
    assert [tick_size(settings, sent) for sent in (0, 40, 80, 100, 150)] == [40, 40, 20, 0, 0]
    unbounded = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
    assert tick_size(unbounded, 10_000_000) == 40 and not needs_progress(unbounded)
    off = load_source_settings("mobile", {"MOBILE_GENERATOR_ENABLED": "false"})
    assert tick_size(off, 0) == 0
    assert needs_progress(settings)


MOBILE = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
PATH = "_generator/mobile.json"


def _plan(progress: dict[str, Any], owner: str, delivered: Tick | None = None, seed: int = 7) -> Plan:
    return plan_tick(progress, MOBILE, now=FIXED_NOW, owner=owner, delivered=delivered, fresh_seed=seed)


def test_a_tick_is_saved_as_pending_before_it_is_sent_and_confirmed_by_the_next_once_delivered() -> None:
    first = _plan({}, "a")
    assert (first.tick.start, first.tick.count) == (0, 40) and first.progress["sent"] == 0
    assert first.progress["pending"]["count"] == 40 and first.progress["version"] == 1
    retried = _plan(first.progress, "a")  # the send failed: nothing delivered, the retry plans again
    assert retried.tick == first.tick and retried.progress == first.progress  # same records, nothing to write
    following = _plan(first.progress, "a", delivered=first.tick)  # this process's send was acknowledged
    assert following.tick.start == 40 and following.progress["sent"] == 40


def test_a_pending_tick_another_process_left_is_sent_again_and_then_confirmed_once_acknowledged() -> None:
    left = _plan({}, "crashed")
    again = _plan(left.progress, "new")
    assert again.tick == left.tick and again.taken_over and again.progress == left.progress
    recorded = acknowledged(again.progress, MOBILE, again.tick)
    assert recorded is not None and recorded["pending"]["acknowledged"] is True
    assert acknowledged(recorded, MOBILE, again.tick) is None  # once
    following = _plan(recorded, "crashed")  # any process now confirms it instead of sending it a third time
    assert following.tick.start == 40 and following.progress["sent"] == 40
    assert acknowledged(following.progress, MOBILE, again.tick) is None  # confirmed already: nothing to record


def test_a_generator_switched_off_sends_nothing_its_pending_tick_included_until_it_is_on_again() -> None:
    """Review 15: a pending tick (a failed send) was sent again whatever the switch said, for ever if it kept
    failing; "false stops its generator" (README)."""
    failed = _plan({}, "a")
    off = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40", "MOBILE_GENERATOR_ENABLED": "0"})
    stopped = plan_tick(failed.progress, off, now=FIXED_NOW, owner="a", delivered=None, fresh_seed=7)
    assert stopped.tick.count == 0 and stopped.progress == failed.progress  # nothing sent, nothing written
    assert _plan(stopped.progress, "a").tick == failed.tick  # switched on again: the same records go


def test_an_unseeded_tick_keeps_its_seed_so_that_a_resend_sends_the_same_records() -> None:
    source = get_source("orders")  # a Datagen config without random.seed: counted, so tracked
    settings = load_source_settings("orders", {"ORDERS_GENERATOR_EVENTS_PER_TICK": "5"})
    assert settings.generator_seed is None and needs_progress(settings, source)
    first = plan_tick({}, settings, now=FIXED_NOW, owner="a", delivered=None, fresh_seed=11)
    retry = plan_tick(first.progress, settings, now=FIXED_NOW, owner="a", delivered=None, fresh_seed=12)
    assert first.progress["pending"]["seed"] == 11 and retry.tick == first.tick
    sent = generate_messages(source, 5, now=FIXED_NOW, seed=first.tick.seed, start_index=0)
    assert generate_messages(source, 5, now=FIXED_NOW, seed=retry.tick.seed, start_index=0) == sent
    seeded = load_source_settings("orders", {"ORDERS_GENERATOR_SEED": "3"})
    assert plan_tick({}, seeded, now=FIXED_NOW, owner="a", delivered=None, fresh_seed=11).tick.seed == 3


def test_progress_saved_before_the_format_had_a_version_is_read() -> None:
    legacy = {"sent": 40, "pending": {"start": 40, "count": 40, "now": FIXED_NOW.isoformat(), "owner": "a"}}
    progress = read_progress(orjson.dumps(legacy), PATH)
    seeded = load_source_settings("mobile", {"MOBILE_GENERATOR_SEED": "5"})
    resend = plan_tick(progress, seeded, now=FIXED_NOW, owner="b", delivered=None, fresh_seed=1)
    assert resend.tick == Tick(40, 40, FIXED_NOW.isoformat(), 5)  # sent again with the configured seed


T = b"2026-11-24T10:00:00+00:00"


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"version": 2, "next_index": 500}', "format version 2"),
        (b'{"version": true, "sent": 3, "pending": null}', "format version True"),
        (b'{"next_index": 500}', "unknown fields"),
        (b'{"sent": -1, "pending": null}', "'sent' is not a count"),
        (b'{"version": 1, "sent": 3, "pending": {"start": 3}}', "needs a start, a count and an ISO time"),
        (b'{"sent": 3, "pending": {"start": 3, "count": 1, "now": "t"}}', "needs a start, a count and an ISO time"),
        (b'{"sent": 3, "pending": {"start": 3, "count": 1, "now": "%s", "seed": "x"}}' % T, "seed is not an integer"),
        (b'{"sent": 3, "pending": {"start": 3, "count": 4, "now": "%s", "delivered": 5}}' % T, "'delivered' is not"),
        (b'{"sent": 3, "pending": {"start": 3, "count": 4, "now": "%s", "delivered": -1}}' % T, "'delivered' is not"),
        # what no version writes, and plan_tick would trust: a tick counted sent that never went (its last piece is
        # confirmed as the tick, never recorded delivered), one re-planned empty for good, one sent again below 'sent'
        (b'{"sent": 3, "pending": {"start": 3, "count": 4, "now": "%s", "delivered": 4}}' % T, "'delivered' is not"),
        (b'{"sent": 3, "pending": {"start": 3, "count": 0, "now": "%s"}}' % T, "the pending tick has no records"),
        (b'{"sent": 40, "pending": {"start": 0, "count": 5, "now": "%s"}}' % T, "starts at 0, not at 'sent' \\(40\\)"),
        (b'{"sent": 3, "pen', "not JSON"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_progress_in_a_format_this_version_does_not_know_is_refused_naming_the_file(content: bytes, why: str) -> None:
    with pytest.raises(UnreadableLakeFile, match=why) as raised:
        read_progress(content, PATH)
    assert str(raised.value).startswith(f"{PATH}: ")


def _pieces(source: Source, tick: Tick, start: int = 0) -> list[Piece]:
    """The pieces functions/generator.py sends for ``tick`` from its record ``start``, in order."""
    pieces = []
    while start < tick.count:
        pieces.append(tick_piece(source, tick, start))
        start = pieces[-1].end
    return pieces


def test_the_piece_bounds_are_a_second_of_one_event_hubs_throughput_unit() -> None:
    """1,000 events/s or 1 MB/s in: a piece is acknowledged well within librdkafka's 45 s message timeout."""
    assert (PIECE_RECORDS, PIECE_BYTES) == (1_000, 1_000_000)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_tick_of_one_piece_sends_the_records_it_sent_before_pieces(name: str) -> None:
    source = get_source(name)
    tick = Tick(40, 100, FIXED_NOW.isoformat(), 5)
    (piece,) = _pieces(source, tick)
    assert piece.messages == generate_messages(source, 100, now=FIXED_NOW, seed=5, start_index=40)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_large_tick_goes_in_pieces_each_the_same_whenever_and_from_wherever_it_is_made(name: str) -> None:
    """A tick of 100,000 records was one send, which a 1-TU namespace cannot take within the send's timeout."""
    source = get_source(name)
    tick = Tick(7, 2_500, FIXED_NOW.isoformat(), 3)
    pieces = _pieces(source, tick)
    assert [(p.start, p.end) for p in pieces] == [(0, 1_000), (1_000, 2_000), (2_000, 2_500)]
    for piece in pieces:
        assert sum(message_bytes(m) for m in piece.messages) <= PIECE_BYTES
        assert tick_piece(source, tick, piece.start) == piece  # sent again, by any process: the same records
    assert _pieces(source, tick, 1_000) == pieces[1:]  # a restart resumes at the first piece not delivered
    assert pieces[0].messages != pieces[1].messages[: len(pieces[0].messages)]
    other_seed = _pieces(source, dataclasses.replace(tick, seed=4), 1_000)[0]
    assert other_seed.messages != pieces[1].messages


def _large_records(size: int) -> Source:
    """A Datagen config source whose records carry a string of ``size`` characters."""
    return schema_source(
        [
            avro_field("id", "long", iteration={"start": 0}),
            avro_field("blob", "string", length={"min": size, "max": size + 1}),
        ],
        keyfield="id",
    )


def test_large_records_go_in_pieces_bounded_by_bytes_generated_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Datagen records may be up to 960 KiB: a tick of 100,000 of them was generated whole, about 96 GB (scaled
    down: records of 3,000 characters, pieces of 10,000 bytes)."""
    monkeypatch.setattr(generator_ticks, "PIECE_BYTES", 10_000)
    source = _large_records(3_000)
    made: list[int] = []
    generate_from = source.generate_from
    assert generate_from is not None

    def counting(fake: Any, count: int, now: datetime, start_index: int) -> list[Any]:
        made.append(count)
        return generate_from(fake, count, now, start_index)

    counted = dataclasses.replace(source, generate_from=counting)
    tick = Tick(0, 10, FIXED_NOW.isoformat(), 1)
    pieces = _pieces(counted, tick)
    assert [(p.start, p.end) for p in pieces] == [(0, 3), (3, 6), (6, 9), (9, 10)]  # 3 x 3 kB each, at most
    assert all(sum(message_bytes(m) for m in p.messages) <= 10_000 for p in pieces)
    assert set(made) == {1} and len(made) == 4 + 4 + 4 + 1  # a record at a time; one more than fits, then stop
    assert [orjson.loads(m.value)["id"] for p in pieces for m in p.messages] == list(range(10))
    assert tick_piece(source, tick, 3) == pieces[1]


def test_a_record_larger_than_a_piece_is_a_piece_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(generator_ticks, "PIECE_BYTES", 1_000)
    pieces = _pieces(_large_records(5_000), Tick(0, 3, FIXED_NOW.isoformat(), 1))
    assert [(p.start, p.end) for p in pieces] == [(0, 1), (1, 2), (2, 3)]
    assert all(message_bytes(p.messages[0]) > 5_000 for p in pieces)


def test_a_pending_tick_resumes_after_the_pieces_recorded_delivered() -> None:
    first = _plan({}, "a")
    assert first.resume == 0 and resume_point(first.progress, MOBILE, first.tick) == 0
    recorded = pieces_delivered(first.progress, MOBILE, first.tick, 20)
    assert recorded is not None and recorded["pending"]["delivered"] == 20
    assert read_progress(orjson.dumps(recorded), PATH) == recorded
    retried = _plan(recorded, "a")  # this process's send of the next piece failed
    assert (retried.tick, retried.resume, retried.taken_over) == (first.tick, 20, False)
    restarted = _plan(recorded, "b")  # another process, or this one restarted
    assert (restarted.tick, restarted.resume, restarted.taken_over) == (first.tick, 20, True)
    assert pieces_delivered(recorded, MOBILE, first.tick, 10) is None  # another instance is ahead: its record stands
    following = _plan(recorded, "a", delivered=first.tick)  # the last piece delivered: the tick is confirmed
    assert (following.tick.start, following.resume, following.progress["sent"]) == (40, 0, 40)
    assert "delivered" not in following.progress["pending"]
    marked = acknowledged(recorded, MOBILE, first.tick)
    assert marked is not None and resume_point(marked, MOBILE, first.tick) is None  # delivered whole elsewhere
    assert pieces_delivered(marked, MOBILE, first.tick, 30) is None
    assert resume_point(following.progress, MOBILE, first.tick) is None


# Several instances running the same timer (a lost singleton lock): the protocol of functions/generator.py
# (read the progress with its version; plan; write it only if still at that version, else skip the tick; send it
# piece by piece, each piece but the last recorded delivered before the next is sent, conditionally, re-reading on
# a conflict and going on from the record that stands; a delivered tick another process planned is recorded
# acknowledged, conditionally, re-reading on a conflict), one lake request or send per step, the steps of the
# instances interleaved at random.

ONE_PER_TICK = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "1", "MOBILE_GENERATOR_SEED": "1"})
THREE_PER_TICK = load_source_settings(
    "mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "3", "MOBILE_GENERATOR_SEED": "1"}
)  # sent in pieces of one record


@dataclass
class _Lake:
    state: dict[str, Any] = field(default_factory=dict)
    version: int = 0

    def write_if(self, progress: dict[str, Any], version: int) -> bool:
        if version != self.version:
            return False
        self.state, self.version = progress, self.version + 1
        return True


@dataclass
class _Instance:
    name: str
    delivered: Tick | None = None  # functions.generator._delivered
    step: str = "read"
    read: tuple[dict[str, Any], int] = ({}, 0)
    plan: Plan | None = None
    acknowledge_attempts: int = 0
    position: int = 0  # the tick's next record to send
    record_attempts: int = 0


class _Run:
    def __init__(
        self,
        settings: SourceSettings,
        names: str,
        rnd: random.Random,
        p_fail: float,
        p_lost_ack: float,
        piece: int | None = None,  # records a piece; None: a tick is one piece
    ):
        self.settings, self.rnd, self.p_fail, self.p_lost_ack = settings, rnd, p_fail, p_lost_ack
        self.piece = piece
        self.lake = _Lake()
        self.instances = [_Instance(name) for name in names]
        self.copies: Counter[int] = Counter()
        self.sends = 0

    def step(self, instance: _Instance, fail: bool = True) -> None:
        if instance.step == "read":  # read_versioned, then plan_tick (pure)
            instance.read = (dict(self.lake.state), self.lake.version)
            progress, version = instance.read
            instance.plan = plan_tick(
                progress, self.settings, now=FIXED_NOW, owner=instance.name, delivered=instance.delivered,
                fresh_seed=self.rnd.randrange(2**63),
            )  # fmt: skip
            instance.position = instance.plan.resume
            instance.step = "write" if instance.plan.progress != progress else "send"
        elif instance.step == "write":  # write_if at the version read; a conflict skips the tick
            assert instance.plan is not None
            written = self.lake.write_if(instance.plan.progress, instance.read[1])
            instance.read = (instance.plan.progress, self.lake.version)
            instance.step = "send" if written else "read"
        elif instance.step == "send":  # one piece, from the tick's record ``position``
            assert instance.plan is not None
            tick = instance.plan.tick
            end = tick.count if self.piece is None else min(tick.count, instance.position + self.piece)
            self.sends += 1
            failed = fail and self.rnd.random() < self.p_fail
            if not failed or self.rnd.random() < self.p_lost_ack:  # a failed send may still have reached the broker
                self.copies.update(range(tick.start + instance.position, tick.start + end))
            if failed:  # raises: the timer's retry is the instance's next invocation
                instance.step = "read"
                return
            instance.position = end
            instance.record_attempts = 0
            instance.step = "record" if end < tick.count else "sent"
            if instance.step == "sent":
                self._sent(instance)
        elif instance.step == "record":  # functions/generator.py _record_piece: one attempt
            assert instance.plan is not None
            progress, version = instance.read
            tick = instance.plan.tick
            resume = resume_point(progress, self.settings, tick)
            recorded = pieces_delivered(progress, self.settings, tick, instance.position)
            instance.record_attempts += 1
            if resume is None:  # another instance delivered it whole: this invocation ends
                instance.step = "read"
            elif recorded is None:  # recorded as far already: go on from there
                instance.position = max(instance.position, resume)
                instance.step = "send" if instance.position < tick.count else "read"
            elif self.lake.write_if(recorded, version):
                instance.read = (recorded, self.lake.version)
                instance.step = "send"
            else:
                instance.step = "reread piece" if instance.record_attempts < 3 else "read"  # 3 conflicts: raises
        elif instance.step == "reread piece":
            instance.read = (dict(self.lake.state), self.lake.version)
            instance.step = "record"
        elif instance.step == "acknowledge":
            assert instance.plan is not None
            progress, version = instance.read
            recorded = acknowledged(progress, self.settings, instance.plan.tick)
            instance.acknowledge_attempts += 1
            done = recorded is None or self.lake.write_if(recorded, version)
            instance.step = "read" if done or instance.acknowledge_attempts == 3 else "reread"
        elif instance.step == "reread":
            instance.read = (dict(self.lake.state), self.lake.version)
            instance.step = "acknowledge"
        sent = int(self.lake.state.get("sent", 0))
        assert all(self.copies[i] for i in range(sent)), f"counted as sent, never delivered: {self.lake.state}"
        pending = self.lake.state.get("pending") or {}
        claimed = range(pending.get("start", 0), pending.get("start", 0) + pending.get("delivered", 0))
        assert all(self.copies[i] for i in claimed), f"recorded delivered, never delivered: {self.lake.state}"

    def _sent(self, instance: _Instance) -> None:
        """The tick's last piece delivered: what functions/generator.py does after its send loop."""
        assert instance.plan is not None
        instance.delivered = instance.plan.tick
        instance.acknowledge_attempts = 0
        instance.step = "acknowledge" if instance.plan.taken_over and instance.plan.tick.count else "read"

    def drain(self) -> None:
        """Every instance finishes what it was doing, without failures; then ticks go on until none is pending."""
        for instance in self.instances:
            while instance.step != "read":
                self.step(instance, fail=False)
        for _ in range(10):
            for instance in self.instances:
                self.step(instance, fail=False)
                while instance.step != "read":
                    self.step(instance, fail=False)


@pytest.mark.parametrize("names", ["AB", "ABC"])
def test_concurrent_instances_never_count_a_tick_that_was_not_delivered(names: str) -> None:
    most = Counter[int]()
    for seed in range(300):
        rnd = random.Random(seed)
        run = _Run(ONE_PER_TICK, names, rnd, p_fail=0.3, p_lost_ack=0.0)
        for _ in range(80):
            run.step(rnd.choice(run.instances))  # asserts after every step: nothing counted that was not delivered
        run.drain()
        sent = int(run.lake.state["sent"])
        assert sent > 0 and all(run.copies[i] for i in range(sent))
        most[max(run.copies.values())] += 1
    # a failed send that reached nothing adds no copy: each instance delivers a tick at most once
    assert max(most) <= len(names), most


@pytest.mark.parametrize("names", ["A", "AB", "ABC"])
def test_ticks_sent_in_pieces_lose_nothing_whoever_sends_and_records_which_piece(names: str) -> None:
    for seed in range(300):
        rnd = random.Random(seed)
        run = _Run(THREE_PER_TICK, names, rnd, p_fail=0.3, p_lost_ack=0.5, piece=1)
        for _ in range(120):
            run.step(rnd.choice(run.instances))  # asserts after every step: nothing counted or recorded undelivered
        run.drain()
        sent = int(run.lake.state["sent"])
        assert sent > 0 and sent % 3 == 0 and all(run.copies[i] for i in range(sent))


def test_a_failed_piece_is_the_only_one_sent_again() -> None:
    """One instance, every send delivered even when it fails: a failed tick of three pieces was sent whole again,
    so a tick the broker cannot take within one send was sent again and again and never counted."""
    run = _Run(THREE_PER_TICK, "A", random.Random(0), p_fail=0.0, p_lost_ack=1.0, piece=1)
    (a,) = run.instances
    failing = iter([False, True, False, True, True, False])  # the second piece fails once, the third twice
    while not (a.step == "read" and a.delivered is not None):
        if a.step == "send":
            run.p_fail = 1.0 if next(failing) else 0.0
        run.step(a)
    assert run.copies == Counter({0: 1, 1: 2, 2: 3})
    assert run.lake.state["pending"]["delivered"] == 2
    run.p_fail = 0.0
    run.step(a)  # the next tick confirms it: planned, then saved
    run.step(a)
    assert run.lake.state["sent"] == 3 and run.lake.state["pending"]["start"] == 3


def test_failed_sends_that_reached_the_broker_add_copies_but_lose_nothing() -> None:
    for seed in range(300):
        rnd = random.Random(seed)
        run = _Run(ONE_PER_TICK, "ABC", rnd, p_fail=0.4, p_lost_ack=0.5)
        for _ in range(80):
            run.step(rnd.choice(run.instances))
        run.drain()
        assert all(run.copies[i] for i in range(int(run.lake.state["sent"])))


def test_three_live_instances_whose_sends_of_a_tick_failed_lose_nothing() -> None:
    """The review's case: C plans a tick and its send fails, B sends it again and fails too, A delivers it; then
    B's and C's retries. Before, A counted it as sent unseen ("resent") and the retries sent the next tick."""
    run = _Run(ONE_PER_TICK, "ABC", random.Random(0), p_fail=1.0, p_lost_ack=0.0)
    a, b, c = run.instances
    for instance in (c, b):  # plan (C writes it) and a send that fails
        while instance.step != "send":
            run.step(instance)
        run.step(instance)
    while a.step != "read" or a.delivered is None:
        run.step(a, fail=False)  # A sends the tick again (delivered) and records it acknowledged
    assert run.lake.state["pending"]["acknowledged"] is True and run.copies == Counter({0: 1})
    for instance in (b, c, a, b, c):  # the retries, then ticks
        run.step(instance, fail=False)
        while instance.step != "read":
            run.step(instance, fail=False)
    assert all(run.copies[i] for i in range(int(run.lake.state["sent"])))


def test_two_instances_whose_ticks_overlap_deliver_no_record_more_than_twice() -> None:
    """The review's pattern of overlapping (both read the same progress) and alternating ticks."""
    run = _Run(ONE_PER_TICK, "AB", random.Random(0), p_fail=0.0, p_lost_ack=0.0)
    a, b = run.instances

    def tick(*order: _Instance) -> None:  # interleave the instances' steps in this order until all are done
        for instance in order:
            run.step(instance)
        for instance in order:
            while instance.step != "read":
                run.step(instance)

    for step in ["overlap", "AB", "overlap", "B", "BA", "BA", "overlap", "overlap", "overlap", "BA", "A", "AB"]:
        if step == "overlap":
            tick(a, b)  # both read before either writes
        else:
            for name in step:
                tick(a if name == "A" else b)
    assert int(run.lake.state["sent"]) >= 5
    assert all(run.copies[i] for i in range(int(run.lake.state["sent"])))
    assert max(run.copies.values()) <= 2, run.copies
