"""The pipeline through the local host on a real broker: landing, dead letters, retries, shutdown, workers."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW
from tests.integration.harness import DevHost, Run, committed_lag, fast_host_json, landed_rows, produce, wait_for

POISON = [(None, b"not json"), ("k", b"\xff\xfe"), ("k", b'{"schema": "violation"}'), ("k", None)]


def _valid(source: str, count: int, seed: int = 3) -> list[tuple[str | None, bytes | None]]:
    messages = generate_messages(SOURCES[source], count, now=FIXED_NOW, seed=seed, start_index=0)
    return [(m.key, m.value.encode()) for m in messages]


def test_new_user_run_lands_every_valid_record_once_and_dead_letters_the_rest(broker: str, tmp_path: Path) -> None:
    """Records already in the topics, --no-timers; once every group committed everything, Ctrl-C exits 0."""
    run, lake = Run(), tmp_path / "lake"
    expected = {}
    for source in ("clickstream", "mobile", "sensors"):
        expected[source] = produce(broker, run.topic(source), _valid(source, 300) + POISON + _valid(source, 200, 9))
    host = DevHost(broker, lake, run.settings(), "--no-timers")
    try:
        for source in expected:
            group = f"{source}-processor-{run.suffix}"
            wait_for(lambda g=group, s=source: committed_lag(broker, g, run.topic(s)) == 0, 90, f"{source} lag 0")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    for source, total in expected.items():
        rows = landed_rows(lake, "raw", source)
        offsets = Counter((row["_partition"], row["_offset"]) for row in rows)
        assert len(rows) == total - len(POISON) == len(offsets), source
        letters = landed_rows(lake, "deadletter", source)
        assert sorted(letter["reason"] for letter in letters) == ["not_json", "not_utf8", "null_value", "schema"]
        assert committed_lag(broker, f"{source}-processor-{run.suffix}", run.topic(source)) == 0
    assert "process_clickstream" in host.output() and "invocations" in host.output()


def test_a_batch_that_fails_past_its_retry_policy_is_retried_in_place_and_lands_once(
    broker: str, tmp_path: Path
) -> None:
    """More failures than one round of the retry policy (6 attempts): with commitOnFailure true the batch
    would be stored and skipped; with host.json's false it waits, then lands."""
    run, lake = Run(), tmp_path / "lake"
    blocker = lake / "raw" / "clickstream"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the source's directory must go: every lake write fails")
    fast_retries = run.settings(["clickstream"]) | {"DEVHOST_RETRY_DELAY_SCALE": "0.01"}
    host = DevHost(broker, lake, fast_retries, "--no-timers")
    try:
        produce(broker, run.topic("clickstream"), _valid("clickstream", 120))
        wait_for(lambda: host.function_stats()["process_clickstream"]["failures"] >= 14, 60, "two failed rounds")
        assert landed_rows(lake, "raw", "clickstream") == []
        blocker.unlink()
        wait_for(lambda: len(landed_rows(lake, "raw", "clickstream")) >= 120, 90, "the retried batch to land")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    rows = landed_rows(lake, "raw", "clickstream")
    assert len(rows) == 120 == len({(r["_partition"], r["_offset"]) for r in rows})
    assert committed_lag(broker, f"clickstream-processor-{run.suffix}", run.topic("clickstream")) == 0


def test_ctrl_c_commits_offsets_of_everything_landed(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    host = DevHost(broker, lake, run.settings(["sensors"]), "--no-timers")
    try:
        produce(broker, run.topic("sensors"), _valid("sensors", 2000))
        wait_for(lambda: len(landed_rows(lake, "raw", "sensors")) >= 1, 60, "the first landed file")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    landed = {(r["_partition"], r["_offset"]) for r in landed_rows(lake, "raw", "sensors")}
    assert committed_lag(broker, f"sensors-processor-{run.suffix}", run.topic("sensors")) == 2000 - len(landed)
    resumed = DevHost(broker, lake, run.settings(["sensors"]), "--no-timers")
    try:
        group = f"sensors-processor-{run.suffix}"
        wait_for(lambda: committed_lag(broker, group, run.topic("sensors")) == 0, 60, "the rest to be committed")
        assert resumed.interrupt() == 0, resumed.output()
    finally:
        if resumed.process.poll() is None:
            resumed.kill()
    rows = landed_rows(lake, "raw", "sensors")
    assert len(rows) == 2000 == len({(r["_partition"], r["_offset"]) for r in rows})


def test_generator_timers_feed_all_sources_to_the_lake(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    settings = run.settings()
    for source in ("clickstream", "mobile", "sensors"):
        upper = source.upper()
        settings |= {
            f"{upper}_GENERATOR_ENABLED": "true",
            f"{upper}_GENERATOR_SCHEDULE": "* * * * * *",
            f"{upper}_GENERATOR_EVENTS_PER_TICK": "40",
            f"{upper}_GENERATOR_ITERATIONS": "120",
        }
    host = DevHost(broker, lake, settings)
    try:
        for source in ("clickstream", "mobile", "sensors"):
            wait_for(lambda s=source: len(landed_rows(lake, "raw", s)) >= 120, 60, f"{source} rows")
        stats = host.function_stats()
        assert all(stats[f"generate_{s}"]["invocations"] >= 3 for s in ("clickstream", "mobile", "sensors"))
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    for source in ("clickstream", "mobile", "sensors"):
        rows = landed_rows(lake, "raw", source)
        assert len(rows) == 120, source  # the iterations cap holds across ticks
        assert landed_rows(lake, "deadletter", source) == []


def _latest_assignments(output: str, function: str) -> dict[int, list[int]]:
    """Each worker's partitions after the last rebalance, from the host's ``assigned`` lines."""
    found: dict[int, list[int]] = {}
    for match in re.finditer(rf"worker (\d+) {function} assigned \S+ \[([\d, ]*)\]", output):
        found[int(match.group(1))] = [int(p) for p in match.group(2).split(",") if p.strip()]
    return found


def test_two_workers_split_partitions_and_land_every_record_once(broker: str, tmp_path: Path) -> None:
    run, lake = Run(), tmp_path / "lake"
    host = DevHost(broker, lake, run.settings(["mobile"]), "--no-timers", "--workers", "2")
    try:
        split = wait_for(
            lambda: len(a := _latest_assignments(host.output(), "process_mobile")) == 2 and all(a.values()) and a,
            60,
            "both workers to own partitions of the mobile topic",
        )
        assert sorted(p for partitions in split.values() for p in partitions) == [0, 1, 2, 3]
        total = produce(broker, run.topic("mobile"), _valid("mobile", 4000))
        wait_for(lambda: len(landed_rows(lake, "raw", "mobile")) >= total, 90, "every mobile record")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    rows = landed_rows(lake, "raw", "mobile")
    assert len(rows) == total == len({(r["_partition"], r["_offset"]) for r in rows})
    per_worker = {int(w): int(n) for w, n in re.findall(r"^worker (\d+):.* process_mobile=(\d+)", host.output(), re.M)}
    assert sorted(per_worker) == [0, 1] and all(per_worker.values()) and sum(per_worker.values()) == total
    assert committed_lag(broker, f"mobile-processor-{run.suffix}", run.topic("mobile")) == 0


@pytest.mark.parametrize("workers", [1, 2])
def test_a_timed_run_stops_its_generators_then_lands_what_they_sent(broker: str, tmp_path: Path, workers: int) -> None:
    """``--duration`` ends with no lag: the generators stop first, then every worker's open 8 s window lands."""
    run, lake = Run(), tmp_path / "lake"
    settings = run.settings(["sensors"]) | {
        "SENSORS_GENERATOR_ENABLED": "true",
        "SENSORS_GENERATOR_SCHEDULE": "* * * * * *",
        "SENSORS_GENERATOR_EVENTS_PER_TICK": "20",
        "SENSORS_GENERATOR_ITERATIONS": "100000",
        "DEVHOST_HOST_JSON": str(fast_host_json(tmp_path, subscriberIntervalInSeconds=8)),
    }
    host = DevHost(broker, lake, settings, "--duration", "12", "--workers", str(workers))
    try:
        assert host.process.wait(timeout=120) == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    output = host.output()
    assert "duration reached" in output
    ticks = int(re.search(r"generate_sensors\s+timerTrigger\s+(\d+)", output).group(1))  # type: ignore[union-attr]
    landed = landed_rows(lake, "raw", "sensors")
    # At least two ticks (the timer's rate on a loaded machine is not what this checks), each one's 20 landed.
    assert ticks >= 2 and len(landed) == 20 * ticks, output[-3000:]
    assert len({(row["_partition"], row["_offset"]) for row in landed}) == len(landed)
    assert re.search(r"process_sensors\s+kafkaTrigger\s+\d+\s+\d+\s+0\s+0\b", output), output[-3000:]
