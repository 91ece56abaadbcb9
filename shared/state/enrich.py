"""The stream-table join: clicks get ``username``, ``city`` and ``level`` from the user's latest profile."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.source_model import Row

JOINED_FIELDS = ("username", "city", "level")


def profile_keys(rows: list[Row]) -> set[str]:
    """The user ids a batch needs profiles for (anonymous ``-1`` users have none)."""
    return {str(row["userid"]) for row in rows if row["user_known"]}


def enrich_clicks(rows: list[Row], profiles: Mapping[str, dict[str, Any] | None]) -> int:
    """Fill the joined columns in place from ``profiles`` (user id -> entity state); returns rows matched."""
    matched = 0
    for row in rows:
        state = profiles.get(str(row["userid"])) if row["user_known"] else None
        profile = (state or {}).get("profile") or {}
        for name in JOINED_FIELDS:
            row[name] = profile.get(name)
        matched += bool(profile)
    return matched
