"""What a source's rows can read from state before they land: the lookups the registry gives sources.

A lookup names the entity kind whose states it reads, the keys a batch needs, and what to do
with the states: clicks join the user's latest profile (the seed's stream-table join), sensor
readings are judged against their sensor's running stats. Which source uses which lookup is
declared with its entity kind in ``shared.state.registry``; a source without one reads nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.source_model import Row
from shared.state import sensor_stats, user_profile
from shared.state.anomaly import count_late, flag_anomalies
from shared.state.enrich import enrich_clicks, profile_keys

States = Mapping[str, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    anomalies: int = 0
    late: int = 0


@dataclass(frozen=True, slots=True)
class Lookup:
    """``entity``'s states for ``keys(rows)`` are read (once per key, cached), then ``apply(rows, states)``."""

    entity: str
    keys: Callable[[list[Row]], set[str]]
    apply: Callable[[list[Row], States], JoinOutcome]


def _join_profiles(rows: list[Row], profiles: States) -> JoinOutcome:
    enrich_clicks(rows, profiles)
    return JoinOutcome()


def _judge_readings(rows: list[Row], stats: States) -> JoinOutcome:
    return JoinOutcome(anomalies=flag_anomalies(rows, stats), late=count_late(rows, stats))


USER_PROFILE = Lookup(user_profile.ENTITY, profile_keys, _join_profiles)
SENSOR_STATS = Lookup(sensor_stats.ENTITY, lambda rows: {row["sensor_id"] for row in rows}, _judge_readings)
