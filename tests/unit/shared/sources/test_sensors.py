"""The sensors source: readings transformed and keyed, implausible ones refused."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.source_model import record_validator
from shared.sources import get_source
from shared.sources.sensors import SensorReading

READING = {
    "sensor_id": "fra-1-power-007",
    "site": "fra-1",
    "metric": "power",
    "value": 118.25,
    "unit": "kilowatt",
    "timestamp": "2026-11-24T10:30:00Z",
}


def test_sensor_reading_valid_and_transformed() -> None:
    reading = record_validator(SensorReading).validate_python(READING)
    row = get_source("sensors").transform(reading)
    assert (row["metric"], row["value"], row["unit"]) == ("power", 118.25, "kilowatt")
    assert get_source("sensors").entity_key(row) == "fra-1-power-007"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": 20_000.0}, "outside"),
        ({"unit": "celsius"}, "measured in"),
        ({"metric": "mood"}, "metric"),
        ({"value": "NaN"}, "finite"),
    ],
)
def test_sensor_rejects_implausible_readings(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SensorReading.model_validate_json(json.dumps(READING | change))
    with pytest.raises(ValidationError, match=message):
        record_validator(SensorReading).validate_json(json.dumps(READING | change))
