"""Lake stores: ``local`` directory, ``blob`` (Blob API, for Azurite) and ``adls`` (ADLS Gen2)."""

from __future__ import annotations

from shared.errors import ConfigurationError
from shared.lake.base import LakeStore
from shared.lake.local import LocalLake
from shared.settings import Settings


def open_lake(settings: Settings) -> LakeStore:
    """The store ``LAKE_KIND`` names, built from settings. Called once per worker process."""
    if settings.lake_kind == "local":
        return LocalLake(settings.lake_local_root)
    if settings.lake_kind == "blob":
        from shared.lake.blob import BlobLake

        return BlobLake.from_settings(settings)
    if settings.lake_kind == "adls":
        from shared.lake.adls import AdlsLake

        return AdlsLake.from_settings(settings)
    raise ConfigurationError(f"unknown LAKE_KIND {settings.lake_kind!r}")


__all__ = ["LakeStore", "LocalLake", "open_lake"]
