"""The registry of sources: the hand-written modules and the Datagen connector configs in ``sources/``.

To add one without Python, drop a Kafka Connect Datagen config (``sources/<name>.json``) in the
folder. To add a hand-written one: write ``shared/sources/<name>.py`` defining ``SOURCE``, then
add it to ``_REGISTERED`` below. Functions, settings and docs follow.
"""

from __future__ import annotations

from pathlib import Path

from shared.datagen.source import load_config_sources
from shared.settings import REGISTERED_DEFAULTS
from shared.source_model import Column, Row, Source
from shared.sources import clickstream, mobile, sensors, users

CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "sources"

_REGISTERED: tuple[Source, ...] = (clickstream.SOURCE, mobile.SOURCE, sensors.SOURCE, users.SOURCE)
CONFIG_SOURCES: tuple[Source, ...] = tuple(load_config_sources(CONFIG_DIR, _REGISTERED))

SOURCES: dict[str, Source] = {source.name: source for source in (*_REGISTERED, *CONFIG_SOURCES)}
REGISTERED_DEFAULTS.update({name: dict(source.setting_defaults) for name, source in SOURCES.items()})


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None


__all__ = ["CONFIG_SOURCES", "SOURCES", "Column", "Row", "Source", "get_source"]
