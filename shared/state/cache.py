"""A small time-to-live cache for entity lookups made once per batch (profiles, sensor stats)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")


class TtlCache(Generic[V]):
    """Values younger than ``ttl_seconds``; ``missing`` names the keys a caller must fetch."""

    def __init__(self, ttl_seconds: float = 30.0, clock: Callable[[], float] = time.monotonic, limit: int = 100_000):
        self.ttl = ttl_seconds
        self.clock = clock
        self.limit = limit
        self._entries: dict[str, tuple[float, V]] = {}

    def missing(self, keys: Iterable[str]) -> set[str]:
        now = self.clock()
        return {key for key in keys if key not in self._entries or now - self._entries[key][0] > self.ttl}

    def put(self, key: str, value: V) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[key] = (self.clock(), value)

    def get_many(self, keys: Iterable[str]) -> dict[str, V]:
        return {key: self._entries[key][1] for key in keys if key in self._entries}
