"""The registry of sources. To add one: write ``shared/sources/<name>.py`` defining
``SOURCE``, then add it to ``_REGISTERED`` below. Functions, settings and docs follow."""

from __future__ import annotations

from shared.sources import clickstream, mobile, sensors, users
from shared.sources.base import Column, Row, Source

_REGISTERED: tuple[Source, ...] = (clickstream.SOURCE, mobile.SOURCE, sensors.SOURCE, users.SOURCE)

SOURCES: dict[str, Source] = {source.name: source for source in _REGISTERED}


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None


__all__ = ["SOURCES", "Column", "Row", "Source", "get_source"]
