"""Infrastructure sensor readings: one measurement of one metric at one site."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Literal

from faker import Faker
from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.source_model import Column, FiniteFloat, Row, Source, epoch_ms

Metric = Literal["temperature", "humidity", "cpu_utilization", "power", "pressure", "vibration"]

# metric -> (unit, plausible physical range, typical mean, typical spread)
METRICS: dict[str, tuple[str, float, float, float, float]] = {
    "temperature": ("celsius", -60.0, 150.0, 24.0, 3.0),
    "humidity": ("percent", 0.0, 100.0, 45.0, 8.0),
    "cpu_utilization": ("percent", 0.0, 100.0, 55.0, 15.0),
    "power": ("kilowatt", 0.0, 10_000.0, 120.0, 20.0),
    "pressure": ("hectopascal", 0.0, 2_000.0, 1013.0, 6.0),
    "vibration": ("millimetre_per_second", 0.0, 1_000.0, 2.5, 0.8),
}
SITES = ("ams-1", "dub-2", "fra-1", "lon-3", "sea-1")


class SensorReading(BaseModel):
    """A reading whose value must be finite and within its metric's physical range."""

    model_config = ConfigDict(frozen=True)

    sensor_id: str = Field(min_length=1, max_length=128)
    site: str = Field(min_length=1, max_length=64)
    metric: Metric
    value: FiniteFloat
    unit: str = Field(min_length=1, max_length=32)
    timestamp: datetime | None = None

    @model_validator(mode="after")
    def _value_fits_metric(self) -> SensorReading:
        self.check_record(self.__dict__)
        return self

    @staticmethod
    def check_record(record: Row) -> Row:
        """The value is finite, inside its metric's physical range and in the metric's unit."""
        metric, value = record["metric"], record["value"]
        unit, low, high, _, _ = METRICS[metric]
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        if not low <= value <= high:
            raise ValueError(f"{metric} value {value} outside [{low}, {high}]")
        if record["unit"] != unit:
            raise ValueError(f"{metric} is measured in {unit}, not {record['unit']}")
        return record


COLUMNS = (
    Column("sensor_id", "string", nullable=False),
    Column("site", "string", nullable=False),
    Column("metric", "string", nullable=False),
    Column("value", "double", nullable=False),
    Column("unit", "string", nullable=False),
    Column("anomaly", "boolean", nullable=False),
)


def transform(reading: Row) -> Row:
    return {
        "sensor_id": reading["sensor_id"],
        "site": reading["site"],
        "metric": reading["metric"],
        "value": reading["value"],
        "unit": reading["unit"],
        "anomaly": False,  # set by shared.state.anomaly from the sensor's running stats
    }


def event_time_ms(reading: Row) -> int | None:
    return epoch_ms(reading.get("timestamp"))


def entity_key(row: Row) -> str:
    return str(row["sensor_id"])


def generate(fake: Faker, count: int, now: datetime) -> list[SensorReading]:
    """Readings from 200 sensors (each always the same site and metric), mostly near normal."""
    readings = []
    for index in range(count):
        sensor = fake.random_int(1, 200)
        metric = list(METRICS)[sensor % len(METRICS)]
        unit, low, high, mean, spread = METRICS[metric]
        value = min(high, max(low, fake.pyfloat(min_value=mean - 3 * spread, max_value=mean + 3 * spread)))
        readings.append(
            SensorReading(
                sensor_id=f"{SITES[sensor % len(SITES)]}-{metric}-{sensor:03d}",
                site=SITES[sensor % len(SITES)],
                metric=metric,
                value=round(value, 3),
                unit=unit,
                timestamp=now - timedelta(milliseconds=(count - index) * 5),
            )
        )
    return readings


SOURCE = Source(
    name="sensors",
    model=SensorReading,
    columns=COLUMNS,
    transform=transform,
    event_time_ms=event_time_ms,
    entity_key=entity_key,
    generate=generate,
)
