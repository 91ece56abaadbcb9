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
from shared.state.carried import Carry
from shared.state.enrich import enrich_clicks, profile_keys, usable_profile
from shared.state.running_stats import is_anomaly, update

States = Mapping[str, dict[str, Any] | None]


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    anomalies: int = 0
    late: int = 0


@dataclass(frozen=True, slots=True)
class Lookup:
    """``entity``'s states for ``keys(rows)`` are read (once per key, cached), then ``apply(rows, states, carry)``;
    ``carry`` holds what the worker's earlier batches added to those keys that the states read do not hold yet
    (``shared.state.carried``), for a lookup of the entity its own source's rows go to.

    ``usable(state)``: whether a key's state has the shape ``apply`` reads; one that has not (damaged outside
    this code) is passed to ``apply`` as no state, so one key cannot stop its source's batches.
    """

    entity: str
    keys: Callable[[list[Row]], set[str]]
    apply: Callable[[list[Row], States, Carry], JoinOutcome]
    usable: Callable[[dict[str, Any]], bool]


def _join_profiles(rows: list[Row], profiles: States, carry: Carry) -> JoinOutcome:
    enrich_clicks(rows, profiles)
    return JoinOutcome()


def _judge_readings(rows: list[Row], stats: States, carry: Carry) -> JoinOutcome:
    return JoinOutcome(anomalies=flag_anomalies(rows, stats, carry), late=count_late(rows, stats))


def _usable_stats(state: dict[str, Any]) -> bool:
    """Whether the readings' judges can read a sensor's state: its running stats and its newest window."""
    stats: dict[str, Any] = {name: state[name] for name in ("count", "mean", "m2") if name in state}
    try:
        is_anomaly(stats, 0.0)
        update(stats, 0.0)
        sensor_stats.newest_window_start(state)
    except (TypeError, ValueError, KeyError, IndexError, AttributeError):
        return False
    return True


USER_PROFILE = Lookup(user_profile.ENTITY, profile_keys, _join_profiles, usable_profile)
SENSOR_STATS = Lookup(
    sensor_stats.ENTITY, lambda rows: {row["sensor_id"] for row in rows}, _judge_readings, _usable_stats
)
