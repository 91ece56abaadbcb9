"""Opening the Blob lake when another instance creates its container at the same moment (Azurite).

The first compaction timers of a fresh deployment open the lake together: each sees no container,
each creates it, and all but one get ``409 ContainerAlreadyExists``. That is success, not a
failed invocation.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import ContainerClient

from devhost.services.azurite import Azurite
from shared.errors import LakeError
from shared.lake.blob import BlobLake


class _LosesTheRace(ContainerClient):
    """A real client whose existence check is answered just before another instance creates the container."""

    def exists(self, **kwargs: Any) -> bool:
        found = super().exists(**kwargs)
        ContainerClient.from_connection_string(self._rival, self.container_name).create_container()
        return found

    @classmethod
    def against(cls, connection_string: str, name: str) -> _LosesTheRace:
        client = cls.from_connection_string(connection_string, name, retry_total=0)
        client._rival = connection_string
        return client

    _rival: str


def test_a_container_created_by_another_instance_after_the_check_is_success(azurite: Azurite) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"
    client = _LosesTheRace.against(azurite.connection_string, name)

    lake = BlobLake(client)  # Azurite answers the create with 409 ContainerAlreadyExists

    lake.write_atomic("raw/x/file.parquet", b"data")
    assert lake.read("raw/x/file.parquet") == b"data"


def test_many_instances_opening_a_new_lake_at_once_all_succeed(azurite: Azurite) -> None:
    name = f"race-{uuid.uuid4().hex[:8]}"

    def open_lake(_: int) -> BlobLake:
        return BlobLake(ContainerClient.from_connection_string(azurite.connection_string, name, retry_total=0))

    with ThreadPoolExecutor(max_workers=8) as pool:
        lakes = list(pool.map(open_lake, range(8)))

    lakes[0].write_atomic("a", b"1")
    assert all(lake.read("a") == b"1" for lake in lakes)


class _ContainerBeingDeleted(ContainerClient):
    """A real client whose uploads meet 409 ContainerBeingDeleted (what Azure answers while a container is being
    deleted; Azurite deletes at once, so the answer is given here): nothing was written."""

    def upload_blob(self, name: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        error = ResourceExistsError(message="The specified container is being deleted.")
        error.error_code, error.status_code, error.reason = "ContainerBeingDeleted", 409, "Conflict"
        raise error


def test_only_blob_already_exists_counts_as_created(azurite: Azurite) -> None:
    """A create that meets its file already there is "already written" (False); any other 409 wrote nothing,
    and counting it as landed would lose the file's records."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    lake = BlobLake(ContainerClient.from_connection_string(azurite.connection_string, name, retry_total=0))
    assert lake.create("raw/x/a.parquet", b"1") is True
    assert lake.create("raw/x/a.parquet", b"2") is False and lake.read("raw/x/a.parquet") == b"1"
    deleting = BlobLake(_ContainerBeingDeleted.from_connection_string(azurite.connection_string, name, retry_total=0))
    with pytest.raises(LakeError, match="409"):
        deleting.create("raw/x/b.parquet", b"1")
