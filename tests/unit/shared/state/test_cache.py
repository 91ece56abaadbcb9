"""The time-to-live cache of per-batch entity lookups."""

from __future__ import annotations

from shared.state.cache import TtlCache


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_expires_entries() -> None:
    clock = FakeClock()
    cache: TtlCache[int] = TtlCache(30, clock)
    cache.put("a", 1)
    assert cache.missing({"a", "b"}) == {"b"}
    clock.now = 31
    assert cache.missing({"a"}) == {"a"}
