"""Child processes the local host starts (broker, Azurite): stopped politely, then firmly, and on Linux
stopped by the kernel too when the host dies without a chance to stop them (SIGKILL, OOM killer).

Each runs in a process group of its own, so the Ctrl-C a terminal sends to its whole foreground group reaches
only the host: the broker stays up while the host finishes its invocations and commits, then the host stops it."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence

_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGTERM the child when its parent dies (Linux's
    ``PR_SET_PDEATHSIG``); None where that does not exist. Resolved before the fork: the child only calls it."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the request took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return die_with_parent


def spawn(command: Sequence[str]) -> subprocess.Popen[bytes]:
    """``command`` as a child that ends with this process, whichever way it ends, in a process group of its own;
    stderr kept for errors. Call it from the thread that outlives the child: Linux signals the child when the thread
    that forked it exits."""
    return subprocess.Popen(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_parent_death_signal(),
        process_group=0,
    )


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds; closes the pipes."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream:
            stream.close()
