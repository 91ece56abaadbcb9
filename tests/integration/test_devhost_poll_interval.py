"""A batch retried in place during a lake outage, against ``maxPollIntervalMs`` (local host, real broker).

Like the Kafka extension, the local host does not poll while it retries a failed batch. An outage
shorter than the poll interval must therefore leave the consumer group alone (one assignment, no
rebalance); a longer one puts the consumer out of the group, and it rejoins, at most once per
interval. Either way every record lands exactly once. Delays are scaled down
(``DEVHOST_RETRY_DELAY_SCALE``) and the interval shortened so that a run takes seconds; the
project's own values are checked against each other in tests/unit/test_poll_interval.py.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tests.conftest import ROOT
from tests.faults.scenario import Scenario, lake_outage
from tests.integration.harness import DevHost, wait_for

ASSIGNED = "process_sensors assigned"
EVICTED = "maximum poll interval"


SHIPPED = json.loads((ROOT / "host.json").read_text())
WINDOW_S = SHIPPED["extensions"]["kafka"]["subscriberIntervalInSeconds"]


def _host_json(root: Path, max_poll_interval_ms: int) -> str:
    document = json.loads(json.dumps(SHIPPED))
    document["extensions"]["kafka"]["maxPollIntervalMs"] = max_poll_interval_ms
    path = root / "host.json"
    path.write_text(json.dumps(document))
    return str(path)


def _run_outage(
    broker: str, tmp_path: Path, *, interval_ms: int, outage_s: float, records: int = 3_000, producing_s: float = 0
) -> tuple[Scenario, DevHost, int, float]:
    """Produce, take the lake down for ``outage_s`` (at least until invocations fail), drain; also the failed
    invocations and how long the lake was down."""
    scenario = Scenario(broker, tmp_path, DEVHOST_HOST_JSON=_host_json(tmp_path, interval_ms))
    host = scenario.host()
    try:
        # Longer than two of host.json's batch windows: records still arrive after the first file has
        # landed, so the batches of the outage fail and are retried.
        with scenario.producing(records, seconds=producing_s or 2 * WINDOW_S + 2):
            wait_for(lambda: any(scenario.lake.glob("raw/**/*.parquet")), 60, "a first file")
            with lake_outage(scenario.lake):
                down = time.monotonic()
                wait_for(lambda: host.function_stats()["process_sensors"]["failures"] >= 3, 30, "failing invocations")
                # The fault: the lake stays down this long while the batch is retried.
                time.sleep(max(0.0, outage_s - (time.monotonic() - down)))
            outage = time.monotonic() - down
        scenario.drained(host, timeout=180)
        failures = int(host.function_stats()["process_sensors"]["failures"])
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    return scenario, host, failures, outage


def test_an_outage_shorter_than_the_poll_interval_causes_no_rebalance(broker: str, tmp_path: Path) -> None:
    # Retry cycles take ~3 s here (62 s of delays x 0.05): the outage (of which the first batch window may pass
    # before an invocation fails) spans several whole cycles.
    interval_ms = 30_000
    scenario, host, failures, outage = _run_outage(broker, tmp_path, interval_ms=interval_ms, outage_s=WINDOW_S + 8)

    assert outage < interval_ms / 1000, f"the outage lasted {outage:.1f} s, not shorter than the poll interval"
    output = host.output()
    assert EVICTED not in output, "the consumer was put out of its group"
    assert output.count(ASSIGNED) == 1, "the group rebalanced"
    assert failures >= 5, "the batch was not retried through several cycles"
    scenario.assert_exactly_once()


def test_a_longer_outage_rebalances_at_most_once_per_poll_interval(broker: str, tmp_path: Path) -> None:
    # librdkafka's floor is the 10 s session timeout. As the extension's, the local listener goes on polling
    # while the executor retries, until the channel is full and it holds the next window's records (about two
    # windows): records keep arriving through the outage, and the outage outlasts the window before the first
    # failure and those two by 25 s.
    interval_ms, outage_s = 10_000, 25.0 + 3 * WINDOW_S
    scenario, host, _, outage = _run_outage(
        broker, tmp_path, interval_ms=interval_ms, outage_s=outage_s, records=8_000, producing_s=7 * WINDOW_S
    )

    output = host.output()
    assert EVICTED in output, "the consumer was never put out of its group"
    rebalances = output.count(ASSIGNED) - 1  # the first assignment is the start
    assert 1 <= rebalances <= math.ceil(outage * 1000 / interval_ms) + 1, (outage, output[-4000:])
    scenario.assert_exactly_once()
