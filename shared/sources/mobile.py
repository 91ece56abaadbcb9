"""Mobile app interactions: one event per tap, screen view, purchase... per device."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from faker import Faker
from pydantic import BaseModel, ConfigDict, Field

from shared.source_model import Column, Row, Source, epoch_ms

EventType = Literal[
    "app_open", "app_close", "screen_view", "tap", "scroll", "search", "add_to_cart", "purchase", "error"
]
EVENT_TYPES: tuple[EventType, ...] = (
    "app_open",
    "app_close",
    "screen_view",
    "tap",
    "scroll",
    "search",
    "add_to_cart",
    "purchase",
    "error",
)

PropertyName = Annotated[str, Field(min_length=1, max_length=128)]
PropertyValue = Annotated[str, Field(max_length=4096)]

SCREENS = ("home", "search", "product", "cart", "checkout", "profile", "settings", "orders")
APP_VERSIONS = ("4.2.0", "4.2.1", "4.3.0", "5.0.0")
OS_VERSIONS = {"iOS": ("17.5", "18.1", "18.2"), "Android": ("13", "14", "15")}


class MobileEvent(BaseModel):
    """An interaction reported by the mobile app."""

    model_config = ConfigDict(frozen=True)

    event_id: str = Field(min_length=1, max_length=64)
    device_id: str = Field(min_length=1, max_length=128)
    user_id: str | None = Field(None, max_length=128)
    session_id: str = Field(min_length=1, max_length=128)
    event_type: EventType
    screen: str = Field(min_length=1, max_length=128)
    app_version: str = Field(max_length=64, pattern=r"^[0-9]+(\.[0-9]+){1,3}$")
    os: Literal["iOS", "Android"]
    os_version: str = Field(max_length=32)
    timestamp: datetime | None = None
    properties: dict[PropertyName, PropertyValue] = Field(default_factory=dict, max_length=64)


COLUMNS = (
    Column("event_id", "string", nullable=False),
    Column("device_id", "string", nullable=False),
    Column("user_id", "string"),
    Column("session_id", "string", nullable=False),
    Column("event_type", "string", nullable=False),
    Column("screen", "string", nullable=False),
    Column("app_version", "string", nullable=False),
    Column("os", "string", nullable=False),
    Column("os_version", "string"),
    Column("properties", "map", nullable=False),
)


def transform(event: Row) -> Row:
    return {
        "event_id": event["event_id"],
        "device_id": event["device_id"],
        "user_id": event.get("user_id"),
        "session_id": event["session_id"],
        "event_type": event["event_type"],
        "screen": event["screen"],
        "app_version": event["app_version"],
        "os": event["os"],
        "os_version": event["os_version"],
        "properties": event.get("properties") or {},
    }


def event_time_ms(event: Row) -> int | None:
    return epoch_ms(event.get("timestamp"))


def entity_key(row: Row) -> str:
    return str(row["device_id"])


def generate(fake: Faker, count: int, now: datetime) -> list[MobileEvent]:
    """Events from a fleet of 500 devices, a few seconds apart, ending at ``now``."""
    events = []
    for index in range(count):
        device = fake.random_int(1, 500)
        os_name = "iOS" if device % 2 else "Android"
        event_type = fake.random_element(EVENT_TYPES)
        properties = {"network": fake.random_element(("wifi", "4g", "5g"))}
        if event_type in ("add_to_cart", "purchase"):
            properties["sku"] = f"SKU-{fake.random_int(1000, 9999)}"
            properties["amount"] = f"{fake.pyfloat(min_value=1, max_value=500, right_digits=2):.2f}"
        if event_type == "search":
            properties["query"] = fake.word()
        events.append(
            MobileEvent(
                event_id=fake.uuid4(),
                device_id=f"device-{device:05d}",
                user_id=None if device % 7 == 0 else f"user-{device % 300:04d}",
                session_id=f"s-{device:05d}-{fake.random_int(1, 20)}",
                event_type=event_type,
                screen=fake.random_element(SCREENS),
                app_version=fake.random_element(APP_VERSIONS),
                os=os_name,
                os_version=fake.random_element(OS_VERSIONS[os_name]),
                timestamp=now - timedelta(milliseconds=(count - index) * 10),
                properties=properties,
            )
        )
    return events


SOURCE = Source(
    name="mobile",
    model=MobileEvent,
    columns=COLUMNS,
    transform=transform,
    event_time_ms=event_time_ms,
    entity_key=entity_key,
    generate=generate,
)
