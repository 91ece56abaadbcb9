"""A landing's request is sent only within ``max_request_seconds`` of its start, each try within its place there.

``max_request_seconds`` bounds one request "from its start until ... any of its tries can take effect", and the
landing checks its deadline before starting each request. In Azure the stores authenticate with the managed
identity: the SDK's bearer-token policy sits inside its retry loop and, when the cached token is due for refresh,
fetches one from the identity endpoint before the try goes out, for as long as that endpoint takes. A review showed
a Put leaving the client after the bound (past the lease: a removed landing's file landing again). ``TryDeadline``
(``shared.lake.connection``), the last policy before the transport, refuses such a try.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.exceptions import ServiceRequestError

from shared.errors import LakeUnavailable
from shared.lake.blob import BlobLake
from shared.lake.connection import REQUEST_LIMITS, latest_attempt_start
from shared.settings import load_settings
from tests.unit.shared.lake.conftest import OfflineTransport

SMALL = {"connection_timeout": 1, "read_timeout": 1, "server_timeout": 1, "retry_total": 0}
ACCOUNT = {"LAKE_KIND": "blob", "LAKE_ACCOUNT_URL": "https://acct.blob.core.windows.net"}


class _SlowIdentity:
    """A managed-identity endpoint that takes ``seconds`` for its first ``slow_fetches`` tokens."""

    def __init__(self, seconds: float, slow_fetches: int = 1_000) -> None:
        self.seconds = seconds
        self.slow_fetches = slow_fetches

    def _fetch(self) -> int:
        if self.slow_fetches > 0:
            self.slow_fetches -= 1
            time.sleep(self.seconds)
        return int(time.time()) + 3600

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("token", self._fetch())

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo("token", self._fetch())


class _Recording(OfflineTransport):
    """Records when each try reached it and the connection timeout it was given; sends nothing."""

    def __init__(self) -> None:
        self.sent_at: list[float] = []
        self.connection_timeouts: list[float | None] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.sent_at.append(time.monotonic())
        self.connection_timeouts.append(kwargs.get("connection_timeout"))
        raise ServiceRequestError("injected: recorded, not sent")


def _lake(monkeypatch: pytest.MonkeyPatch, identity: _SlowIdentity, **limits: Any) -> tuple[BlobLake, _Recording]:
    monkeypatch.setattr("shared.lake.connection.LakeConnection.credential", lambda self: identity)
    monkeypatch.setattr("shared.lake.blob.ensure_container", lambda *args, **kwargs: None)
    transport = _Recording()
    return BlobLake.from_settings(load_settings(ACCOUNT), transport=transport, **limits), transport


def test_a_put_does_not_go_out_later_than_max_request_seconds_after_it_started(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer's case: the identity endpoint takes 8 s, the limits bound a request to 7 s."""
    lake, transport = _lake(monkeypatch, _SlowIdentity(8.0), **SMALL)
    assert lake.max_request_seconds == 7.0

    started = time.monotonic()  # the landing's deadline check passed: this request may start
    with pytest.raises(LakeUnavailable, match="not sent"):
        lake.create("raw/x/file.parquet", b"data")
    late = [sent - started for sent in transport.sent_at if sent - started > lake.max_request_seconds]
    assert not late, f"the Put left the client {late[0]:.1f} s after the request started"


def test_a_try_late_within_its_connection_time_connects_in_what_is_left_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    lake, transport = _lake(monkeypatch, _SlowIdentity(0.4), **SMALL)
    started = time.monotonic()
    with pytest.raises(LakeUnavailable):
        lake.create("raw/x/file.parquet", b"data")
    [sent_at], [connection_timeout] = transport.sent_at, transport.connection_timeouts
    assert connection_timeout is not None, "the try was given the client's whole connection timeout"
    assert 0 < connection_timeout <= SMALL["connection_timeout"] - 0.4
    # connected by its place in the bound (the request starts a moment after this test reads its clock)
    assert sent_at - started + connection_timeout <= SMALL["connection_timeout"] + 0.05


def test_a_try_refused_for_its_lateness_is_retried_in_the_next_ones_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first token fetch takes 1.5 s, past the first try's 1 s to connect: that try is not sent; the retry, with
    the token then cached, is, with the whole connection timeout (its place in the bound starts 7 s in)."""
    limits = SMALL | {"retry_total": 1, "initial_backoff": 0, "increment_base": 0, "random_jitter_range": 0}
    lake, transport = _lake(monkeypatch, _SlowIdentity(1.5, slow_fetches=1), **limits)
    started = time.monotonic()
    with pytest.raises(LakeUnavailable):
        lake.create("raw/x/file.parquet", b"data")
    assert len(transport.sent_at) == 1, "the first try went out past its connection time"
    assert transport.connection_timeouts == [limits["connection_timeout"]]
    retry_connect_by = latest_attempt_start(REQUEST_LIMITS | limits, 1) + limits["connection_timeout"]
    assert transport.sent_at[0] - started + limits["connection_timeout"] <= retry_connect_by
