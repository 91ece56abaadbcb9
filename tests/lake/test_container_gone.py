"""A lake container deleted under a running app is the lake refusing the app, never "no such file" or a lost race.

Read as absent, a partition's ledger would look new and its landing would retry as a lost race (``WriteConflict``,
transient) for good, with no infrastructure alert; now every request says ``LakeRefused`` (an infrastructure
error). On Azurite (Blob API) and on the fake DFS server (a fake: no Data Lake endpoint runs here).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devhost.services.azurite import Azurite
from shared.errors import LakeRefused
from shared.failures import ErrorClass, classify
from shared.lake import LakeStore
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake
from tests.lake.conftest import adls_lake, blob_lake
from tests.lake.fake_dfs_server import FakeDataLake

LEDGER = "_ledger/clickstream/clickstream-0.json"
FILE = "raw/clickstream/dt=2026-12-06/hour=08/clickstream-0-0-9.parquet"

REQUESTS: dict[str, Callable[[LakeStore, str], object]] = {
    "read_versioned": lambda lake, _etag: lake.read_versioned(LEDGER),
    "write_if new": lambda lake, _etag: lake.write_if(LEDGER + ".new", b"{}", None),
    "write_if at version": lambda lake, etag: lake.write_if(LEDGER, b"{}", etag),
    "create": lambda lake, _etag: lake.create(FILE + ".next", b"data"),
    "exists": lambda lake, _etag: lake.exists(FILE),
    "read": lambda lake, _etag: lake.read(FILE),
    "list_paths": lambda lake, _etag: lake.list_paths("raw/clickstream"),
    "delete": lambda lake, _etag: lake.delete(FILE),
}


def _written(lake: LakeStore) -> str:
    assert lake.create(FILE, b"data")
    return lake.write_if(LEDGER, b"{}", None)


@pytest.mark.parametrize("request_name", REQUESTS)
def test_blob_store_whose_container_was_deleted_refuses(azurite: Azurite, request_name: str) -> None:
    lake: BlobLake = blob_lake(azurite.connection_string)
    etag = _written(lake)
    lake.container.delete_container()
    with pytest.raises(LakeRefused, match="container is not there") as refused:
        REQUESTS[request_name](lake, etag)
    assert classify(refused.value) is ErrorClass.INFRASTRUCTURE


@pytest.mark.parametrize("request_name", REQUESTS)
def test_adls_store_whose_file_system_was_deleted_refuses(
    fake_dfs: tuple[FakeDataLake, str], request_name: str
) -> None:
    service, connection_string = fake_dfs
    lake: AdlsLake = adls_lake(connection_string)
    etag = _written(lake)
    service.file_systems.clear()
    with pytest.raises(LakeRefused, match="container is not there"):
        REQUESTS[request_name](lake, etag)


def test_a_missing_file_or_directory_is_still_absent_and_a_lost_race_still_a_conflict(
    fake_dfs: tuple[FakeDataLake, str], azurite: Azurite
) -> None:
    from shared.errors import WriteConflict

    for lake in (adls_lake(fake_dfs[1]), blob_lake(azurite.connection_string)):
        assert lake.read_versioned(LEDGER) is None
        assert not lake.exists(FILE)
        assert lake.list_paths("raw/none") == []
        lake.delete(FILE)
        etag = lake.write_if(LEDGER, b"{}", None)
        with pytest.raises(WriteConflict):
            lake.write_if(LEDGER, b"{}", None)
        lake.write_if(LEDGER, b"[]", etag)
        with pytest.raises(WriteConflict):
            lake.write_if(LEDGER, b"{}", etag)
