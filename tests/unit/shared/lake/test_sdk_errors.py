"""``lake_errors``: a transfer that broke off is an outage (``LakeUnavailable``), an answer the service gave is not."""

from __future__ import annotations

import pytest
from azure.core.exceptions import (
    AzureError,
    DecodeError,
    HttpResponseError,
    IncompleteReadError,
    ServiceResponseError,
)

from shared.errors import LakeError, LakeRefused, LakeUnavailable
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
