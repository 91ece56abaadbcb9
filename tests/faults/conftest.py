"""The fault suite shares the integration tests' broker (STREAMINGPOC_TEST_BROKER, else an embedded Tansu)."""

from tests.integration.conftest import broker

__all__ = ["broker"]
