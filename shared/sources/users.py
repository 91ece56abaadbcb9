"""User profiles, shaped exactly like kafka-connect-datagen's ``clickstream_users`` quickstart.

The table side of the clickstream join: the latest profile per ``user_id`` is kept in the
``user_profile`` entity and added to landed clicks. Datagen sends ``user_id`` and
``registered_at`` (epoch ms) as longs and the rest as strings.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from faker import Faker
from pydantic import BaseModel, ConfigDict, Field

from shared.source_model import INT64_MAX, Column, NoBoolean, Row, Source, TimestampMs, epoch_ms

# The option lists of Datagen's clickstream_users_schema.avro.
DATAGEN_FIRST_NAMES = [
    "Elwyn",
    "Curran",
    "Hanson",
    "Woodrow",
    "Ferd",
    "Reeva",
    "Antonio",
    "Arlyne",
    "Dimitri",
    "Oriana",
]
DATAGEN_LAST_NAMES = ["Vanyard", "Vears", "Garrity", "Trice", "Tomaschke", "Jelliman", "Pask", "Blaksland", "Fawthrop"]
DATAGEN_CITIES = ["Frankfurt", "San Francisco", "New York", "London", "Palo Alto", "Raleigh"]
DATAGEN_LEVELS = ["Gold", "Silver", "Platinum"]
KNOWN_USER_IDS = range(1, 41)  # the ids clickstream's generator gives known users


class UserProfile(BaseModel):
    """One profile record."""

    model_config = ConfigDict(frozen=True)

    user_id: Annotated[int, NoBoolean("an integer from 0 to 2**63-1")] = Field(ge=0, le=INT64_MAX)
    username: str = Field(min_length=1, max_length=128)
    registered_at: TimestampMs
    first_name: str = Field(max_length=128)
    last_name: str = Field(max_length=128)
    city: str = Field(max_length=128)
    level: str = Field(max_length=32)


COLUMNS = (
    Column("user_id", "long", nullable=False),
    Column("username", "string", nullable=False),
    Column("registered_at", "timestamp", nullable=False),
    Column("first_name", "string"),
    Column("last_name", "string"),
    Column("city", "string"),
    Column("level", "string"),
)


def transform(event: Row) -> Row:
    return {
        name: event[name]
        for name in ("user_id", "username", "registered_at", "first_name", "last_name", "city", "level")
    }


def event_time_ms(event: Row) -> None:
    """A profile record carries no time of its own (``registered_at`` is when the user signed up),
    so its rows land by the Kafka record's timestamp, flagged ``_event_time_source = "kafka"``."""
    return None


def entity_key(row: Row) -> str:
    return str(row["user_id"])


def generate(fake: Faker, count: int, now: datetime) -> list[UserProfile]:
    """Profiles of the users clickstream's generator clicks as, registered up to three years before ``now``."""
    profiles = []
    for _ in range(count):
        first = fake.random_element(DATAGEN_FIRST_NAMES)
        registered = now - timedelta(days=fake.random_int(1, 3 * 365), seconds=fake.random_int(0, 86_399))
        profiles.append(
            UserProfile(
                user_id=fake.random_element(KNOWN_USER_IDS),
                username=f"{first}_{fake.random_int(1, 999)}",
                registered_at=epoch_ms(registered) or 0,
                first_name=first,
                last_name=fake.random_element(DATAGEN_LAST_NAMES),
                city=fake.random_element(DATAGEN_CITIES),
                level=fake.random_element(DATAGEN_LEVELS),
            )
        )
    return profiles


SOURCE = Source(
    name="users",
    model=UserProfile,
    columns=COLUMNS,
    transform=transform,
    event_time_ms=event_time_ms,
    entity_key=entity_key,
    generate=generate,
)
