"""``lake_errors``: a transfer that broke off is an outage (``LakeUnavailable``), an answer the service gave is not."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from azure.core.exceptions import (
    AzureError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceResponseError,
)
from azure.storage.blob import ContainerClient

from devhost.services.azurite import Azurite
from shared.errors import LakeError, LakeRefused, LakeUnavailable, WriteConflict
from shared.lake.blob import BlobWrites
from shared.lake.sdk_errors import lake_errors


def _answered(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"HTTP {status}")
    error.status_code, error.reason = status, "refused"
    return error


BROKEN_OFF = {
    "downloader, tries spent": HttpResponseError(ServiceResponseError("reset"), error=ServiceResponseError("reset")),
    "body cut short": IncompleteReadError("IncompleteRead(10 bytes read, 90 more expected)"),
    "body undecodable": DecodeError("Received response with content-encoding: gzip, but failed to decode it."),
    "connection dropped": ServiceResponseError("connection reset by peer"),
}


@pytest.mark.parametrize("error", BROKEN_OFF.values(), ids=BROKEN_OFF.keys())
def test_a_transfer_that_broke_off_is_transient(error: AzureError) -> None:
    with pytest.raises(LakeUnavailable), lake_errors("read raw/x"):
        raise error


@pytest.mark.parametrize(
    ("status", "raised"), [(401, LakeRefused), (403, LakeRefused), (409, LakeError), (503, LakeUnavailable)]
)
def test_an_answer_is_judged_by_its_status(status: int, raised: type[Exception]) -> None:
    with pytest.raises(raised) as caught, lake_errors("read raw/x"):
        raise _answered(status)
    assert type(caught.value) is raised


@pytest.mark.parametrize(
    ("status", "code", "raised"),
    [
        (412, "ConditionNotMet", WriteConflict),
        (409, "BlobAlreadyExists", WriteConflict),
        (409, "BlobImmutableDueToPolicy", LakeError),
        (409, "ContainerBeingDeleted", LakeError),
        (404, "ContainerNotFound", LakeRefused),
    ],
)
def test_a_conditional_write_is_a_lost_race_only_when_the_answer_says_so(status: int, code: str, raised: type) -> None:
    """Review 15: every 409 and 404 of a ledger write was a lost race (WriteConflict, transient): a ledger under an
    immutability policy was written again and again for ever, the partition waiting without the infrastructure
    alert. Sent through the SDK to a real HTTP server answering as Storage does."""
    answered: list[str] = []

    class Storage(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            answered.append(self.path)
            body = f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>m</Message></Error>'
            self.send_response(status)
            for name, value in {"x-ms-error-code": code, "Content-Type": "application/xml"}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Storage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        port = server.server_port
        writes = BlobWrites()
        writes.container = ContainerClient.from_connection_string(Azurite(port, port, port).connection_string, "lake")
        with pytest.raises(raised) as caught:
            writes.write_if("_landing/orders/orders+0.json", b"{}", '"0x8D0"')
    finally:
        server.shutdown()
        server.server_close()
    assert type(caught.value) is raised and answered
