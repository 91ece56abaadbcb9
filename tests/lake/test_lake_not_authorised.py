"""An app whose data role on the lake was removed is refused on every request (``LakeRefused``), never read as
absent or unreadable. Storage answers 403 ``AuthorizationPermissionMismatch``, which the SDK raises as a bare
``HttpResponseError`` (only ``AuthenticationFailed`` becomes ``ClientAuthenticationError``): it was a plain
``LakeError``, so ``stored_holes`` answered "no gaps" and ``raw_rows`` put records in doubt.

A fake: a local HTTP server answering as Blob storage does for an identity without a data role on the container
(Azurite answers a shared-key client as authorised).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.storage.blob import ContainerClient

from shared.errors import LakeRefused
from shared.lake.blob import BlobLake
from shared.landing.ledger import stored_holes
from shared.records import TopicPartition

ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class _Storage(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:  # Get Container Properties: the container is there
        self.send_response(200)
        self.send_header("ETag", '"0x1"')
        self.send_header("Last-Modified", "Sun, 06 Dec 2026 00:00:00 GMT")
        self.send_header("x-ms-version", "2025-01-05")
        self.end_headers()

    def do_GET(self) -> None:  # any blob: this identity may not read it
        if "restype=container" in self.path and "comp=" not in self.path:
            self.do_HEAD()
            return
        body = (
            b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthorizationPermissionMismatch</Code>'
            b"<Message>This request is not authorized to perform this operation using this permission.</Message>"
            b"</Error>"
        )
        self.send_response(403, "This request is not authorized to perform this operation using this permission.")
        self.send_header("x-ms-error-code", "AuthorizationPermissionMismatch")
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def lake() -> Iterator[BlobLake]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Storage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        connection = (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
        )
        yield BlobLake(ContainerClient.from_connection_string(connection, "lake", retry_total=0))
    finally:
        server.shutdown()
        server.server_close()


def test_a_read_the_app_is_not_authorised_for_is_refused(lake: BlobLake) -> None:
    with pytest.raises(LakeRefused):
        lake.read_versioned("_landing/mobile/mobile+0.json")


def test_stored_holes_does_not_answer_no_gaps_for_an_app_without_its_role(lake: BlobLake) -> None:
    with pytest.raises(LakeRefused):
        stored_holes(lake, "mobile", TopicPartition("mobile", 0), 0)
