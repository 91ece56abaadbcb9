"""The stream-table join: clicks get ``username``, ``city`` and ``level`` from the user's latest profile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.source_model import Row

JOINED_FIELDS = ("username", "city", "level")


def profile_keys(rows: list[Row]) -> set[str]:
    """The user ids a batch needs profiles for (anonymous ``-1`` users have none)."""
    return {str(row["userid"]) for row in rows if row["user_known"]}


def usable_profile(state: dict[str, Any]) -> bool:
    """Whether a user's state has the shape the join reads: no profile, or one whose joined fields are text."""
    profile = state.get("profile")
    return profile is None or (
        isinstance(profile, dict) and all(isinstance(profile.get(name), str | None) for name in JOINED_FIELDS)
    )


def enrich_clicks(rows: list[Row], profiles: Mapping[str, dict[str, Any] | None]) -> int:
    """Fill the joined columns in place from ``profiles`` (user id -> entity state); returns rows matched.

    A state of another shape must not reach here (``usable_profile``; ``shared.state.lookups`` reads it as None)."""
    matched = 0
    for row in rows:
        state = profiles.get(str(row["userid"])) if row["user_known"] else None
        profile = (state or {}).get("profile") or {}
        for name in JOINED_FIELDS:
            row[name] = profile.get(name)
        matched += bool(profile)
    return matched
