"""The query API's decisions: which entity a source maps to, which keys are acceptable, what to return."""

from __future__ import annotations

import re
from typing import Any

from shared.state.offsets import APPLIED, LEGACY_MARKS
from shared.state.registry import ENTITY_KINDS
from shared.state.sensor_stats import windows_view

KEY_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BadQuery(ValueError):
    """Unknown source or malformed key (HTTP 400)."""


def entity_name(source: str, key: str) -> str:
    """The entity holding ``source``'s state for ``key``; ``BadQuery`` when either is not acceptable."""
    kind = ENTITY_KINDS.get(source)
    if kind is None:
        raise BadQuery(f"unknown source {source!r}; known: {', '.join(sorted(ENTITY_KINDS))}")
    if not KEY_PATTERN.match(key):
        raise BadQuery("key must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return kind.name


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the API shows it: bookkeeping (offset marks, running sums) left out."""
    hidden = {APPLIED, LEGACY_MARKS, "m2"}
    shown = {name: value for name, value in state.items() if name not in hidden}
    if "windows" in shown:
        shown["windows"] = windows_view(state)
    return shown
