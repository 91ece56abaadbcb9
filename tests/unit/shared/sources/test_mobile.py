"""The mobile source: valid events transformed and keyed, invalid ones refused."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.source_model import record_validator
from shared.sources import get_source
from shared.sources.mobile import MobileEvent
from tests.conftest import FIXED_NOW_MS

MOBILE = {
    "event_id": "e-1",
    "device_id": "device-00001",
    "user_id": None,
    "session_id": "s-1",
    "event_type": "purchase",
    "screen": "checkout",
    "app_version": "5.0.0",
    "os": "iOS",
    "os_version": "18.1",
    "timestamp": "2026-11-24T10:29:59.500Z",
    "properties": {"sku": "SKU-1", "amount": "9.99"},
}


def test_mobile_event_valid_and_transformed() -> None:
    event = record_validator(MobileEvent).validate_python(MOBILE)
    row = get_source("mobile").transform(event)
    assert row["properties"] == {"sku": "SKU-1", "amount": "9.99"}
    assert get_source("mobile").entity_key(row) == "device-00001"
    assert get_source("mobile").event_time_ms(event) == FIXED_NOW_MS - 500


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "teleport"},
        {"os": "Symbian"},
        {"app_version": "five"},
        {"device_id": ""},
        {"properties": {"n": 1}},
        {"timestamp": "yesterday"},
    ],
)
def test_mobile_rejects_invalid(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MobileEvent.model_validate(MOBILE | change)
    with pytest.raises(ValidationError):
        record_validator(MobileEvent).validate_python(MOBILE | change)
