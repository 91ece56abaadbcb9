"""``max_request_seconds`` against the backoffs the SDK's retry policy really sleeps (a review's finding).

The storage ``StorageRetryPolicy.send`` calls ``increment`` (``settings["count"] += 1``) before ``sleep``, so
``ExponentialRetry.get_backoff_time`` sees count 1 for the first retry: the n-th retry (n from 1) waits up to
``initial_backoff + increment_base ** n + random_jitter_range``. Counted from 0, the bound was 4 s short (66 s for
70 s). Driven here through the real pipeline the stores build: every try fails at once, the sleeps are recorded, not
slept, and the jitter is taken at its top.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from shared.errors import LakeUnavailable
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake
from shared.lake.connection import IN_FLIGHT_SECONDS, REQUEST_LIMITS, max_request_seconds
from shared.landing.partition import CLOCK_SKEW_SECONDS, DEFAULT_LEASE_SECONDS
from shared.settings import load_settings
from tests.unit.shared.lake.conftest import OfflineTransport

CONNECTION = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
)


class _NeverAnswers(OfflineTransport):
    """Every try fails before it is sent (no time spent); the backoffs asked for are recorded, not slept."""

    def __init__(self) -> None:
        self.tries = 0
        self.slept: list[float] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.tries += 1
        raise ServiceRequestError("injected: refused")

    def sleep(self, duration: float) -> None:
        self.slept.append(duration)


@pytest.mark.parametrize("store", [BlobLake, AdlsLake])
def test_the_sdks_backoffs_fit_in_max_request_seconds(store: type, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random.Random, "uniform", lambda self, low, high: high)  # the longest jitter
    transport = _NeverAnswers()
    settings = load_settings({"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": CONNECTION})
    with pytest.raises(LakeUnavailable):
        store.from_settings(settings, transport=transport)  # the container check: one request, every retry
    limits = REQUEST_LIMITS
    assert transport.tries == limits["retry_total"] + 1
    per_try = limits["connection_timeout"] + max(limits["read_timeout"], limits["server_timeout"] + IN_FLIGHT_SECONDS)
    counted_for_backoff = max_request_seconds(limits) - transport.tries * per_try
    assert sum(transport.slept) <= counted_for_backoff, (
        f"the SDK slept {transport.slept} (sum {sum(transport.slept)} s) between tries; "
        f"max_request_seconds={max_request_seconds(limits)} counts {counted_for_backoff} s of backoff"
    )
    assert sum(transport.slept) == counted_for_backoff  # exact: the bound hides no slack either


def test_the_stores_bound_stays_what_the_lease_setting_states() -> None:
    """``LANDING_LEASE_SECONDS``'s description (shared/settings.py) and docs/reliability.md state 66 s a request."""
    assert max_request_seconds(REQUEST_LIMITS) <= 66
    assert 2 * max_request_seconds(REQUEST_LIMITS) + CLOCK_SKEW_SECONDS <= DEFAULT_LEASE_SECONDS
