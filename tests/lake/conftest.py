"""The three lake stores, each on its real backend: a directory, Azurite (Blob API), the fake DFS server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devhost.services.azurite import Azurite, start_azurite
from shared.lake import LakeStore, LocalLake
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake
from shared.settings import load_settings
from tests.lake.fake_dfs_server import FakeDataLake, fake_dfs_server

NO_RETRIES = {"retry_total": 0}


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with start_azurite(tmp_path_factory.mktemp("azurite"), reuse_running=False) as running:
        yield running


@pytest.fixture
def fake_dfs() -> Iterator[tuple[FakeDataLake, str]]:
    with fake_dfs_server() as served:
        yield served


def blob_lake(connection_string: str) -> BlobLake:
    settings = {"LAKE_CONNECTION_STRING": connection_string, "LAKE_FILE_SYSTEM": f"lake-{uuid.uuid4().hex[:8]}"}
    return BlobLake.from_settings(load_settings(settings), **NO_RETRIES)


def adls_lake(connection_string: str) -> AdlsLake:
    return AdlsLake.from_settings(load_settings({"LAKE_CONNECTION_STRING": connection_string}), **NO_RETRIES)


@pytest.fixture(params=["local", "blob", "adls"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LakeStore:
    if request.param == "local":
        return LocalLake(tmp_path / "lake")
    if request.param == "blob":
        return blob_lake(request.getfixturevalue("azurite").connection_string)
    return adls_lake(request.getfixturevalue("fake_dfs")[1])
