"""Small helpers the reducers share: counters and first/last seen."""

from __future__ import annotations

from typing import Any

from shared.source_model import INT64_MAX


def count(state: dict[str, Any], field: str, key: str, amount: int = 1) -> None:
    counts = state.setdefault(field, {})
    counts[key] = counts.get(key, 0) + amount


def seen(state: dict[str, Any], event_ms: int) -> None:
    state["first_seen"] = min(state.get("first_seen", event_ms), event_ms)
    state["last_seen"] = max(state.get("last_seen", event_ms), event_ms)


def add_capped(total: int, amount: int) -> int:
    """``total + amount``, held at int64's largest: a bucket's state is JSON that orjson writes, and one
    key's counter past 64 bits would make every operation on its bucket fail."""
    return min(total + amount, INT64_MAX)
