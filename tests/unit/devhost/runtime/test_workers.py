"""The worker pool (``--workers N``): its stop ends in bounded time whatever became of a worker."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from devhost.runtime.host_config import HostConfig
from devhost.runtime.workers import WorkerPool
from tests.integration.harness import wait_for


def test_a_worker_killed_while_waiting_does_not_hang_the_hosts_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers waited on a multiprocessing Event, whose ``set`` waits for every process asleep on it: one killed
    there (the OOM killer) made the host hang at "stopping" for ever (a review's case). The other still reports."""
    monkeypatch.setenv("STREAMINGPOC_TEST_MARKS", str(tmp_path))
    pool = WorkerPool(2, HostConfig({}), "tests.unit.devhost.runtime.no_kafka_triggers_app", "http://127.0.0.1:9/")
    try:
        wait_for(lambda: len(list(tmp_path.iterdir())) == 2, 60, "both workers to import the app")
        wait_for(lambda: all(process.pid for process in pool.processes), 10, "their pids")
        killed = pool.processes[0]
        os.kill(killed.pid or 0, signal.SIGKILL)
        killed.join(timeout=10)
        started = time.monotonic()
        reports = pool.stop(timeout=30)
        assert time.monotonic() - started < 30
        assert [report["worker"] for report in reports] == [2]
    finally:
        for process in pool.processes:
            process.kill()
