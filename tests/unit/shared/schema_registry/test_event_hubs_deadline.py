"""One Event Hubs Schema Registry call ends within ``max_call_seconds``, however slowly the service answers.

azure-core's ``read_timeout`` bounds each read of the socket, not the call: a service (or a proxy) that sends one
byte of its answer now and then would hold the call, and the partition's invocation, past ``maxPollIntervalMs``.
The real SDK client, with the app's limits, against a local TLS server (the SDK signs in only over https).
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.schemaregistry import SchemaRegistryClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from shared.errors import RegistryUnavailable
from shared.schema_registry import client as registry_client
from shared.schema_registry.client import REQUEST_LIMITS, EventHubsRegistry

BOUND = 1.5  # the registry's max_call_seconds here: the trickle sends a byte or two within it
MARGIN = 1.0
TRICKLING_ID, FAST_ID = "a" * 32, "b" * 32
DEFINITION = b'{"type": "record", "name": "T", "fields": []}'


class _Service(BaseHTTPRequestHandler):
    """The schema GET: ``FAST_ID`` answered at once; ``TRICKLING_ID`` a byte every second until ``released``."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *_: Any) -> None:
        return None

    def do_GET(self) -> None:
        trickle = TRICKLING_ID in self.path
        padding = 10_000 if trickle else 0
        self.send_response(200)
        for name, value in {
            "Content-Type": "application/json;serialization=Avro",
            "Content-Length": str(padding + len(DEFINITION)),
            "Schema-Id": TRICKLING_ID if trickle else FAST_ID,
            "Schema-Group-Name": "g",
            "Schema-Name": "T",
            "Schema-Version": "1",
        }.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()
        if trickle:
            self.server.trickling.set()
            sent = 0
            while sent < padding and not self.server.released.wait(1.0):
                self.wfile.write(b" ")
                self.wfile.flush()
                sent += 1
            self.wfile.write(b" " * (padding - sent))
        self.wfile.write(DEFINITION)
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Service)
        self.socket = context.wrap_socket(self.socket, server_side=True)
        self.trickling, self.released = threading.Event(), threading.Event()


class _Credential:
    def get_token(self, *_: Any, **__: Any) -> AccessToken:
        return AccessToken("fake-token", int(time.time()) + 3600)


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert, key_file = folder / "cert.pem", folder / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert, key_file


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[_Server, EventHubsRegistry]]:
    cert, key = _self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _Server(context)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sdk = SchemaRegistryClient(
        f"127.0.0.1:{server.server_port}", _Credential(), connection_verify=str(cert), **REQUEST_LIMITS
    )
    try:
        yield server, EventHubsRegistry("evhns-test.servicebus.windows.net", "g", client=sdk, max_call_seconds=BOUND)
    finally:
        server.released.set()  # the call given up on gets its answer and its thread ends
        for thread in threading.enumerate():
            if thread.name == "eventhubs-registry-call":
                thread.join(timeout=10)
        server.shutdown()
        server.server_close()


def test_a_trickled_answer_is_given_up_at_the_bound_and_the_next_call_is_answered(
    service: tuple[_Server, EventHubsRegistry],
) -> None:
    server, registry = service
    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=f"no answer within {BOUND:g} s"):
        registry.schema(TRICKLING_ID)
    took = time.monotonic() - started
    assert BOUND <= took < BOUND + MARGIN, f"the call took {took:.1f} s, its bound is {BOUND} s"
    assert server.trickling.is_set() and not server.released.is_set()  # still sending when given up on
    waiting = [thread for thread in threading.enumerate() if thread.name == "eventhubs-registry-call"]
    assert waiting and all(thread.is_alive() for thread in waiting)

    assert registry.schema(FAST_ID).text == DEFINITION.decode()


def test_past_the_abandoned_calls_cap_a_call_fails_at_once_until_one_ends(
    service: tuple[_Server, EventHubsRegistry], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, registry = service
    monkeypatch.setattr(registry_client, "MAX_ABANDONED_CALLS", 1)
    with pytest.raises(RegistryUnavailable, match="no answer within"):
        registry.schema(TRICKLING_ID)

    started = time.monotonic()
    with pytest.raises(RegistryUnavailable, match=r"1 earlier calls .* still waiting"):
        registry.schema(FAST_ID)
    assert time.monotonic() - started < MARGIN

    server.released.set()
    calls = [thread for thread in threading.enumerate() if thread.name == "eventhubs-registry-call"]
    for thread in calls:
        thread.join(timeout=10)
    assert calls and not any(thread.is_alive() for thread in calls)
    assert registry.schema(FAST_ID).text == DEFINITION.decode()
