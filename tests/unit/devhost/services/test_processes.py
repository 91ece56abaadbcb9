"""Children of the local host end with it, even when it is SIGKILLed and cannot stop them itself."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devhost.services.processes import spawn, stop

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

PARENT = """
import sys, time
from devhost.services.processes import spawn
child = spawn(["sleep", "300"])
print(child.pid, flush=True)
time.sleep(300)
"""


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended; only its reaping is left


def _wait_until_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while _running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_a_child_ends_when_its_parent_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, cwd=Path(__file__).parents[4])
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    try:
        assert _running(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_until_gone(child_pid, timeout=10), "the child outlived its SIGKILLed parent"
    finally:
        if _running(child_pid):
            os.kill(child_pid, signal.SIGKILL)
        parent.stdout.close()


def test_a_spawned_child_runs_until_stopped() -> None:
    child = spawn(["sleep", "300"])
    try:
        assert child.poll() is None
    finally:
        stop(child, timeout=5)
    assert child.returncode == -signal.SIGTERM
