"""Read-ahead batches across a rebalance that hands the partitions back (local host shaped like the Kafka extension).

Slow invocations keep the executor channel full: the listener holds a batch in the channel and one
waiting to get in, read before the rebalance. Another member joins the group (it takes half the
partitions and processes nothing) and leaves again, so the partitions come back to the same instance.
The read-ahead batches of the partitions it lost still run and land (their offsets are not stored:
the first revoked partition ends the storing); after the partitions come back they are redelivered
from the last commit and the landing ledger skips what already landed. The end: every record once
in raw/, exact entity counts.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer

from tests.faults.scenario import Scenario
from tests.integration.harness import DevHost, fast_host_json, wait_for

SLOW_S = "2"  # each invocation 2 s longer than the 1 s window of the tests' host.json


def _assignments(host: DevHost, topic: str) -> list[list[int]]:
    pattern = rf"process_sensors assigned {re.escape(topic)} \[([\d, ]*)\]"
    return [[int(p) for p in found.split(",") if p.strip()] for found in re.findall(pattern, host.output())]


def _intrude(broker: str, group: str, topic: str, hold_s: float, owned: list[list[int]]) -> None:
    """Join the group, poll (committing nothing) for ``hold_s`` seconds once it owns partitions, leave."""
    consumer = Consumer(
        {"bootstrap.servers": broker, "group.id": group, "enable.auto.commit": False, "client.id": "intruder"}
    )
    try:
        consumer.subscribe([topic], on_assign=lambda _c, partitions: owned.append([p.partition for p in partitions]))
        deadline = time.monotonic() + 60
        while not any(owned) and time.monotonic() < deadline:
            consumer.poll(0.2)
        held = time.monotonic() + hold_s
        while time.monotonic() < held:
            consumer.poll(0.2)
    finally:
        consumer.close()  # leaves the group; commits nothing (auto commit off, nothing stored)


def test_read_ahead_batches_across_a_rebalance_that_hands_the_partitions_back(broker: str, tmp_path: Path) -> None:
    host_json = str(fast_host_json(tmp_path, maxPollIntervalMs=60_000))
    scenario = Scenario(broker, tmp_path, DEVHOST_HOST_JSON=host_json)
    owned: list[list[int]] = []
    with scenario.hosting(DEVHOST_FAULT_SLOW_INVOCATION_S=SLOW_S) as host:
        with scenario.producing(6_000, seconds=20):
            wait_for(lambda: scenario.lake.is_dir() and any(scenario.lake.glob("raw/**/*.parquet")), 60, "a file")
            intruder = threading.Thread(target=_intrude, args=(broker, scenario.group, scenario.topic, 6.0, owned))
            intruder.start()
            intruder.join(90)
            assert not intruder.is_alive() and any(owned), "the other member never got partitions"
            wait_for(lambda: sorted(_assignments(host, scenario.topic)[-1]) == [0, 1, 2, 3], 60, "all back")
        scenario.finish(host, timeout=240)
        output = host.output()
        assert len(_assignments(host, scenario.topic)) >= 3, output[-4000:]  # start, shared, all back
        assert "not stored" in output, "no read-ahead batch of a revoked partition ran"
    scenario.assert_exactly_once()
