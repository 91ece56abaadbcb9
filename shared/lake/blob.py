"""The lake over the Blob API: for Azurite (which has no Data Lake endpoint); works on any Blob storage.

One request per write: a Put Blob (a reader sees the old blob or the whole new one), created only
if absent (``If-None-Match: *``) or replaced only at a version (``If-Match``). Every request names
the server-side timeout (``timeout=``, ``shared.lake.connection``: ``server_timeout``), so the
service gives up on it no later than the client does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ExponentialRetry, StorageErrorCode

from shared.errors import ConfigurationError, WriteConflict
from shared.lake.connection import REQUEST_LIMITS, lake_connection, max_request_seconds, unleased_write_timeout
from shared.lake.sdk_errors import (
    CONDITION_FAILED,
    container_gone,
    download_versioned,
    lake_errors,
    lost_race,
    write_conditions,
)
from shared.layout import check_relative_path
from shared.settings import Settings
from shared.source_model import epoch_ms


def blob_endpoint(account_url: str) -> str:
    """The Blob endpoint of a storage account given by either its blob or its dfs URL."""
    return account_url.replace(".dfs.core.", ".blob.core.")


# Put Blob's own size limit. The SDK's default stages a body over 64 MiB as blocks, many requests committed by
# the last, which could arrive after a landing's deadline; set on every client that writes, a create is one request.
SINGLE_PUT_BYTES = 5000 * 1024 * 1024


# 409s that mean "the container is there": the Blob endpoint's, and a Data Lake endpoint's for a file system.
_ALREADY_EXISTS = frozenset({StorageErrorCode.CONTAINER_ALREADY_EXISTS, "FilesystemAlreadyExists"})


def ensure_container(
    container: ContainerClient, kind: str = "container", server_timeout: int = REQUEST_LIMITS["server_timeout"]
) -> None:
    """Create ``container`` (on an ADLS Gen2 account, its file system) only when it is absent.

    Get Container Properties first: an existing container, the case in Azure, where Terraform creates it, is
    opened with what the app's role on that container allows, never the account-level right a Create Container
    needs. A missing one (Azurite, a new local lake) is created; another instance creating it between the check
    and the create (409 ``ContainerAlreadyExists``, e.g. the first compaction timers of a fresh deployment, which
    open the lake together) is success. Any other 409 (``ContainerBeingDeleted``) and any failed check raise.
    """
    with lake_errors(f"create {kind} {container.container_name}"):
        if container.exists(timeout=server_timeout):
            return
        try:
            container.create_container(timeout=server_timeout)
        except ResourceExistsError as error:
            if getattr(error, "error_code", None) not in _ALREADY_EXISTS:
                raise


@contextmanager
def sdk_refused_settings(connection_string: str) -> Iterator[None]:
    """A ``ValueError`` of the storage SDKs' client constructors (a connection string they cannot parse, an account
    URL they cannot read) as a ``ConfigurationError`` naming the setting, not a traceback, and never quoting the
    connection string: it holds the account key or a SAS. ``shared.settings`` refuses such values as it reads them;
    this covers whatever the SDK refuses beyond that."""
    try:
        yield
    except ValueError as error:
        setting = "LAKE_CONNECTION_STRING" if connection_string else "LAKE_ACCOUNT_URL"
        why = str(error).splitlines()[0] if str(error).strip() else type(error).__name__
        secrets = [connection_string, *(part.split("=", 1)[-1] for part in connection_string.split(";"))]
        if any(len(secret) >= 4 and secret in why for secret in secrets):
            why = "refused by the storage SDK"  # the SDK's message quotes a part of it: never shown
        raise ConfigurationError(f"{setting}: the storage SDK cannot use it: {why}") from None


class BlobWrites:
    """Writes as Put Blob, one request each: created only if absent, replaced, or replaced at a version.

    The Blob store and the ADLS Gen2 store (multi-protocol access) both write this way; each request names
    ``server_timeout`` (``timeout=``, seconds), as every request of both stores does.
    """

    container: ContainerClient
    server_timeout: int = REQUEST_LIMITS["server_timeout"]

    def create(self, path: str, data: bytes) -> bool:
        name = check_relative_path(path)
        with lake_errors(f"create {name}"):
            try:
                self.container.upload_blob(name, data, overwrite=False, timeout=self.server_timeout)
            except ResourceExistsError as error:
                # Only "the blob is there" means written; any other 409 (ContainerBeingDeleted, a path conflict on
                # a hierarchical namespace) wrote nothing and must not be counted as landed.
                if getattr(error, "error_code", None) != StorageErrorCode.BLOB_ALREADY_EXISTS:
                    raise
                return False
            return True

    def write_atomic(self, path: str, data: bytes) -> None:
        name = check_relative_path(path)
        timeout = unleased_write_timeout(self.server_timeout, len(data))  # a curated file may be a GiB
        with lake_errors(f"write {name}"):
            self.container.upload_blob(name, data, overwrite=True, timeout=timeout)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        name = check_relative_path(path)
        condition = write_conditions(version)
        with lake_errors(f"write {name}"):
            try:
                blob = self.container.get_blob_client(name)
                written = blob.upload_blob(data, overwrite=True, timeout=self.server_timeout, **condition)
            except CONDITION_FAILED as error:
                if not lost_race(error):  # a container gone, a policy: lake_errors says what it is
                    raise
                raise WriteConflict(f"{name} changed since version {version}") from error
            return str(written["etag"])

    def exists(self, path: str) -> bool:
        name = check_relative_path(path)
        with lake_errors(f"check {name}"):
            try:  # Get Blob Properties, as the SDKs' exists() sends, which also answers False for a missing container
                self.container.get_blob_client(name).get_blob_properties(timeout=self.server_timeout)
            except ResourceNotFoundError as error:
                if container_gone(error):
                    raise
                return False
            return True


class BlobLake(BlobWrites):
    """Files as block blobs in one container."""

    max_request_seconds = max_request_seconds(REQUEST_LIMITS)

    def __init__(self, container: ContainerClient, server_timeout: int = REQUEST_LIMITS["server_timeout"]) -> None:
        self.container = container
        self.server_timeout = server_timeout
        ensure_container(container, server_timeout=server_timeout)

    @classmethod
    def from_settings(cls, settings: Settings, **client_options: Any) -> BlobLake:
        """A connection string when set (Azurite), else the account URL with the managed identity."""
        lake = lake_connection(settings, blob_endpoint, client_options)
        options = lake.client_options(ExponentialRetry) | {"max_single_put_size": SINGLE_PUT_BYTES}
        with sdk_refused_settings(lake.connection_string):
            if lake.connection_string:
                container = ContainerClient.from_connection_string(lake.connection_string, lake.file_system, **options)
            else:
                container = ContainerClient(lake.account_url, lake.file_system, lake.credential(), **options)
        store = cls(container, lake.server_timeout)
        store.max_request_seconds = lake.max_request_seconds
        return store

    def read(self, path: str) -> bytes:
        name = check_relative_path(path)
        with lake_errors(f"read {name}"):
            return bytes(self.container.download_blob(name, timeout=self.server_timeout).readall())

    def list_paths(self, prefix: str) -> list[str]:
        return sorted(self.list_modified(prefix))

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        directory = check_relative_path(prefix) + "/"
        with lake_errors(f"list {directory}"):
            blobs = self.container.list_blobs(name_starts_with=directory, timeout=self.server_timeout)
            return {blob.name: epoch_ms(blob.last_modified) for blob in sorted(blobs, key=lambda blob: blob.name)}

    def delete(self, path: str) -> None:
        name = check_relative_path(path)
        with lake_errors(f"delete {name}"):
            try:
                self.container.delete_blob(name, timeout=self.server_timeout)
            except ResourceNotFoundError as error:
                if container_gone(error):
                    raise

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        name = check_relative_path(path)
        return download_versioned(name, lambda: self.container.download_blob(name, timeout=self.server_timeout))
