"""Exactly once under faults, through the real local host and broker, with records produced during the faults.

Each test ends with every valid record in raw/ once (partition, incarnation, offset), every
poison record dead-lettered once, exact per-sensor entity counts, and (where it applies) nothing
landed before overwritten. ``make faults`` runs these alone; ``make test`` runs them with the rest.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from devhost.services.broker import embedded_broker
from tests.faults.scenario import Scenario, broker_pid, lake_outage, stop
from tests.integration.harness import END_OFFSETS, TEST_BATCHING, DevHost, fast_host_json, wait_for


def test_sigkill_five_times_at_random_moments_while_producing(broker: str, tmp_path: Path) -> None:
    scenario = Scenario(broker, tmp_path)
    chance = random.Random(2026)
    host = scenario.host()
    try:
        with scenario.producing(20_000, seconds=15):
            for _ in range(5):
                time.sleep(chance.uniform(1.0, 3.0))  # a random moment: the fault, not a synchronisation
                host.kill()
                host = scenario.host()
        scenario.finish(host)
    finally:
        stop(host)
    scenario.assert_exactly_once()


def test_killed_between_landing_and_storing_offsets(broker: str, tmp_path: Path) -> None:
    scenario = Scenario(broker, tmp_path)
    scenario.produce(3_000)
    with scenario.hosting(DEVHOST_FAULT_KILL_BEFORE_STORE="2") as doomed:
        assert doomed.wait(60) == -signal.SIGKILL, doomed.output()
    assert "killed before storing offsets" in doomed.output()
    with scenario.hosting() as host:
        with scenario.producing(3_000, seconds=3):
            pass
        scenario.finish(host)
    scenario.assert_exactly_once()


def _rewind(broker: str, group: str, topic: str, back: int) -> None:
    """Move the group's committed offsets ``back`` records earlier on every partition (the group is idle)."""
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(4)], timeout=10)
        rewound = [TopicPartition(topic, c.partition, max(0, c.offset - back)) for c in committed if c.offset > 0]
        consumer.commit(offsets=rewound, asynchronous=False)
    finally:
        consumer.close()


def test_consumer_group_rewound_into_the_middle_of_landed_batches(broker: str, tmp_path: Path) -> None:
    scenario = Scenario(broker, tmp_path)
    scenario.produce(8_000)
    with scenario.hosting() as host:
        scenario.finish(host)
    _rewind(broker, scenario.group, scenario.topic, back=1_337)  # not a batch boundary
    with scenario.hosting() as host:
        with scenario.producing(2_000, seconds=3):
            pass
        scenario.finish(host)
    scenario.assert_exactly_once()


def _owners(host: DevHost, topic: str) -> dict[int, list[int]]:
    """Each worker's partitions of ``topic`` after its last rebalance, from the host's ``assigned`` lines."""
    found: dict[int, list[int]] = {}
    for match in re.finditer(rf"worker (\d+) process_sensors assigned {re.escape(topic)} \[([\d, ]*)\]", host.output()):
        found[int(match.group(1))] = [int(p) for p in match.group(2).split(",") if p.strip()]
    return found


def _landed_files(scenario: Scenario) -> int:
    return len(list(scenario.lake.glob("raw/**/*.parquet")))


def _host_json(root: Path, **kafka: int) -> str:
    """The tests' host.json (``fast_host_json``) with some Kafka options changed; for ``DEVHOST_HOST_JSON``."""
    return str(fast_host_json(root, **kafka))


def test_scale_out_to_three_workers_and_back_while_producing(broker: str, tmp_path: Path) -> None:
    """1 -> 3 workers (the single worker leaves cleanly), then 3 -> 1 with the three removed abruptly.

    Tansu (memory build) stops assigning a group's partitions after several members leave it
    cleanly at once, so scale-in here kills the instances, as a platform removing them may.
    """
    scenario = Scenario(broker, tmp_path, DEVHOST_HOST_JSON=_host_json(tmp_path, maxPollIntervalMs=15_000))
    host = scenario.host()
    try:
        with scenario.producing(15_000, seconds=20):
            wait_for(lambda: _landed_files(scenario) > 0, 60, "the single worker to land files")
            assert host.interrupt() == 0, host.output()
            host = three = scenario.host("--workers", "3")
            wait_for(lambda: len(o := _owners(three, scenario.topic)) == 3 and all(o.values()), 60, "3 owners")
            landed = _landed_files(scenario)
            wait_for(lambda: _landed_files(scenario) > landed, 60, "three workers to land files")
            _kill_process_tree(three)
            host = one = scenario.host()
            wait_for(lambda: len(o := _owners(one, scenario.topic)) == 1 and all(o.values()), 90, "1 owner")
        scenario.finish(host)
    finally:
        stop(host)
    scenario.assert_exactly_once()


def _kill_process_tree(host: DevHost) -> None:
    """SIGKILL the host and its worker processes (children of the host process)."""
    children = Path(f"/proc/{host.process.pid}/task/{host.process.pid}/children").read_text().split()
    for pid in children:
        os.kill(int(pid), signal.SIGKILL)
    host.kill()


def test_lake_outage_of_thirty_seconds(broker: str, tmp_path: Path) -> None:
    scenario = Scenario(broker, tmp_path)
    scenario.produce(2_000)
    with scenario.hosting() as host:
        wait_for(lambda: scenario.lake.is_dir() and any(scenario.lake.glob("raw/**/*.parquet")), 60, "a file")
        with scenario.producing(4_000, seconds=10), lake_outage(scenario.lake):
            outage_started = time.monotonic()
            # A loaded machine retries more slowly: wait on the failures, then keep the lake down for 30 s in all.
            wait_for(lambda: host.function_stats()["process_sensors"]["failures"] >= 3, 90, "failing invocations")
            time.sleep(max(0.0, 30 - (time.monotonic() - outage_started)))  # the fault's duration, not a wait
        scenario.finish(host)
    scenario.assert_exactly_once()


def test_lake_outage_longer_than_max_poll_interval_forces_a_rebalance(broker: str, tmp_path: Path) -> None:
    """The consumer retrying in place misses max.poll.interval.ms, is put out of the group and rejoins.

    One worker: Tansu (memory build) stops assigning a group whose several members are put out at once.
    """
    interval_s = 10
    window_s = float(TEST_BATCHING["subscriberIntervalInSeconds"])
    # Once invocations fail, the listener goes on polling until the channel is full and it holds the next
    # window's records (about two windows), then polls no more: the outage outlasts those windows and the
    # interval by 5 s. Records are produced all through it, so those windows are never empty.
    failing_s = 3 * window_s + interval_s + 5
    scenario = Scenario(broker, tmp_path, DEVHOST_HOST_JSON=_host_json(tmp_path, maxPollIntervalMs=interval_s * 1000))
    scenario.produce(2_000)
    with scenario.hosting() as host:
        wait_for(lambda: any(scenario.lake.glob("raw/**/*.parquet")), 60, "a first file")
        with scenario.producing(6_000, seconds=failing_s + 5), lake_outage(scenario.lake):
            wait_for(lambda: host.function_stats()["process_sensors"]["failures"] >= 1, 30, "failing invocations")
            time.sleep(failing_s)  # the fault: longer than max.poll.interval.ms while the batch is retried in place
        # librdkafka reports the eviction through the consumer's queue: at the first poll after the outage.
        wait_for(lambda: "maximum poll interval" in host.output(), 120, "the consumer to be put out of its group")
        scenario.finish(host, timeout=180)
        assert host.output().count("process_sensors assigned") >= 2, "no rebalance happened"
    scenario.assert_exactly_once()


def test_broker_paused_for_twenty_seconds(tmp_path: Path) -> None:
    with embedded_broker() as address:
        scenario = Scenario(address, tmp_path)
        with scenario.hosting() as host:
            scenario.produce(3_000)
            wait_for(lambda: any(scenario.lake.glob("raw/**/*.parquet")), 60, "a first file")
            pid = broker_pid(address)
            os.kill(pid, signal.SIGSTOP)
            try:
                time.sleep(20)
            finally:
                os.kill(pid, signal.SIGCONT)
            scenario.produce(3_000)
            scenario.finish(host, timeout=180)
        scenario.assert_exactly_once()


def test_a_second_run_on_a_fresh_broker_keeps_the_first_runs_files_and_counts(tmp_path: Path) -> None:
    with embedded_broker() as first_broker:
        scenario = Scenario(first_broker, tmp_path)
        scenario.produce(4_000)
        with scenario.hosting() as host:
            scenario.finish(host)
    first_files = {path: path.read_bytes() for path in (tmp_path / "lake").glob("raw/**/*.parquet")}
    with embedded_broker() as second_broker:  # memory storage: the topic's offsets start at 0 again
        scenario.restart_broker(second_broker)
        END_OFFSETS.pop(scenario.topic)  # the producer's record of end offsets was the first broker's
        scenario.produce(3_000)
        with scenario.hosting() as host:
            scenario.finish(host)
    assert all(path.read_bytes() == data for path, data in first_files.items()), "a first-run file changed"
    assert any("+i1+" in path.name for path in (tmp_path / "lake").glob("raw/**/*.parquet"))
    scenario.assert_exactly_once()
