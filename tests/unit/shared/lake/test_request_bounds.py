"""``max_request_seconds`` bounds when a request can still take effect, not only when the client stops waiting.

A try the service received goes on until its server-side timeout runs out, which can be after the client gave up on
it (its read timeout) and retried. A landing's holder stops sending at ``started + lease - max_request_seconds -
clock skew`` (``shared.landing.partition``), so the bound must cover the last moment any try of a request started
before then can commit: worked out here try by try, with the backoffs of the SDK retry policy the stores are built
with, for the stores' limits and for others ``lake_connection`` accepts.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.storage.blob import ContainerClient, ExponentialRetry

from shared.errors import ConfigurationError
from shared.lake.blob import blob_endpoint
from shared.lake.connection import IN_FLIGHT_SECONDS, REQUEST_LIMITS, lake_connection, max_request_seconds
from shared.landing.partition import CLOCK_SKEW_SECONDS, DEFAULT_LEASE_SECONDS
from shared.settings import load_settings

SETTINGS = {"LAKE_KIND": "blob", "LAKE_ACCOUNT_URL": "https://account.blob.core.windows.net"}


def _latest_effect(overrides: dict[str, Any]) -> float:
    """From a request's start, the last moment the client still waits on it or any of its tries can take effect.

    Each try: connected within ``connection_timeout``, sent, then the client waits ``read_timeout`` for a byte; the
    service has the request within ``IN_FLIGHT_SECONDS`` of its sending and works on it for ``server_timeout`` at
    most. The next try starts when the client gave up, after the retry policy's longest backoff: the n-th retry (n
    from 1) waits ``initial_backoff + increment_base ** n`` plus the jitter (``test_sdk_backoffs`` records it).
    """
    lake = lake_connection(load_settings(SETTINGS), blob_endpoint, overrides)
    client = ContainerClient(lake.account_url, lake.file_system, **lake.client_options(ExponentialRetry))
    retry: Any = next(p for p in client._pipeline._impl_policies if type(p).__name__ == "ExponentialRetry")
    config: Any = client._pipeline._transport.connection_config
    start, latest = 0.0, 0.0
    for attempt in range(retry.total_retries + 1):
        sent = start + config.timeout
        gives_up = sent + config.read_timeout
        latest = max(latest, gives_up, sent + IN_FLIGHT_SECONDS + lake.server_timeout)
        retry_number = attempt + 1  # the SDK counts a retry before it computes the wait (count 1 for the first)
        backoff = retry.initial_backoff + retry.increment_base**retry_number + retry.random_jitter_range
        start = gives_up + backoff
    return latest


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the stores' own limits
        {"retry_total": 0},  # what the lake tests use
        {"server_timeout": REQUEST_LIMITS["read_timeout"]},  # the service may work on a try as long as the client waits
        {"server_timeout": 12, "retry_total": 3},
        {"server_timeout": 1},
        {"read_timeout": 30, "server_timeout": 30},
    ],
    ids=str,
)
def test_max_request_seconds_covers_the_service_working_on_every_try(overrides: dict[str, Any]) -> None:
    limits = REQUEST_LIMITS | overrides
    assert max_request_seconds(limits) >= _latest_effect(overrides)


def test_the_stores_limits_keep_the_lease_arithmetic_and_the_server_timeout_within_the_read_timeout() -> None:
    lake = lake_connection(load_settings(SETTINGS), blob_endpoint, {})
    assert 0 < lake.server_timeout <= lake.limits["read_timeout"]
    assert lake.max_request_seconds == _latest_effect({})  # exact: no slack hidden in the bound
    assert 2 * lake.max_request_seconds + CLOCK_SKEW_SECONDS <= DEFAULT_LEASE_SECONDS


@pytest.mark.parametrize("server_timeout", [0, REQUEST_LIMITS["read_timeout"] + 1, 7.5, None])
def test_a_server_timeout_longer_than_the_read_timeout_or_not_whole_seconds_is_refused(server_timeout: Any) -> None:
    with pytest.raises(ConfigurationError, match="server_timeout"):
        lake_connection(load_settings(SETTINGS), blob_endpoint, {"server_timeout": server_timeout})
