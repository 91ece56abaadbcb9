"""A real Kafka-protocol broker for the integration tests: the one in STREAMINGPOC_TEST_BROKER, else Tansu."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devhost.services.broker import embedded_broker


@pytest.fixture(scope="session")
def broker() -> Iterator[str]:
    existing = os.environ.get("STREAMINGPOC_TEST_BROKER")
    if existing:
        yield existing
        return
    with embedded_broker() as address:
        yield address
