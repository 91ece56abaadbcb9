"""Azurite from the project's npm dependency, or one that already answers on the usual ports."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from devhost.errors import DevHostError
from devhost.runtime.host_config import PROJECT_ROOT
from devhost.services.processes import free_port, spawn, stop

ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same for every Azurite install), not a secret.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
DEFAULT_PORTS = (10000, 10001, 10002)


class AzuriteError(DevHostError):
    """Azurite is not installed or did not start."""


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        base = "http://127.0.0.1"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={base}:{self.blob_port}/{ACCOUNT};QueueEndpoint={base}:{self.queue_port}/{ACCOUNT};"
            f"TableEndpoint={base}:{self.table_port}/{ACCOUNT};"
        )


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@contextmanager
def start_azurite(location: Path, *, reuse_running: bool = True, timeout: float = 30.0) -> Iterator[Azurite]:
    """Azurite on loopback with data under ``location``; stopped on exit unless it was already running."""
    if reuse_running and all(_answers(port) for port in DEFAULT_PORTS):
        yield Azurite(*DEFAULT_PORTS)
        return
    binary = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if not binary.exists():
        raise AzuriteError(f"{binary} is missing: run `npm install` in {PROJECT_ROOT}")
    azurite = Azurite(free_port(), free_port(), free_port())
    location.mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "--silent",
        "--skipApiVersionCheck",
        "--location",
        str(location),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(azurite.blob_port),
        "--queueHost",
        "127.0.0.1",
        "--queuePort",
        str(azurite.queue_port),
        "--tableHost",
        "127.0.0.1",
        "--tablePort",
        str(azurite.table_port),
    ]
    process = spawn(command)
    try:
        deadline = time.monotonic() + timeout
        ports = (azurite.blob_port, azurite.queue_port, azurite.table_port)
        while not all(_answers(port) for port in ports):
            if process.poll() is not None:
                raise AzuriteError(f"Azurite exited with {process.returncode}: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise AzuriteError(f"Azurite did not answer on {ports} within {timeout:.0f}s")
            time.sleep(0.1)
        yield azurite
    finally:
        stop(process)
