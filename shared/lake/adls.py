"""The production lake: an ADLS Gen2 account (hierarchical namespace), managed identity by default.

Writes go through the account's Blob endpoint (multi-protocol access): one Put Blob per file,
created only if absent or replaced only at a version, and atomic (a reader sees the old file or
the whole new one), and so does the file system's existence check (created only when absent).
The Data Lake API (``azure-storage-file-datalake``) does everything else: reads, directory
listings and deletes. A write through the Data Lake API would take four requests (create,
append, flush, rename) and could not be conditional in one step. Every request, on either
endpoint, names the server-side timeout (``timeout=``, ``shared.lake.connection``: ``server_timeout``).
"""

from __future__ import annotations

from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from azure.storage.blob import ExponentialRetry as BlobRetry
from azure.storage.filedatalake import ExponentialRetry as DataLakeRetry
from azure.storage.filedatalake import FileSystemClient

from shared.lake.blob import SINGLE_PUT_BYTES, BlobWrites, blob_endpoint, ensure_container, sdk_refused_settings
from shared.lake.connection import REQUEST_LIMITS, lake_connection, max_request_seconds
from shared.lake.sdk_errors import container_gone, download_versioned, lake_errors
from shared.layout import check_relative_path
from shared.settings import Settings
from shared.source_model import epoch_ms

TEMPORARY_DIRECTORY = "_tmp"  # where earlier versions staged files before renaming them; never listed


def dfs_endpoint(account_url: str) -> str:
    """The Data Lake endpoint of a storage account given by either its blob or its dfs URL."""
    return account_url.replace(".blob.core.", ".dfs.core.")


class AdlsLake(BlobWrites):
    """Files in one ADLS Gen2 file system: written as blobs, read and listed as paths."""

    max_request_seconds = max_request_seconds(REQUEST_LIMITS)

    def __init__(
        self,
        file_system: FileSystemClient,
        container: ContainerClient,
        server_timeout: int = REQUEST_LIMITS["server_timeout"],
    ) -> None:
        self.file_system = file_system
        self.container = container
        self.server_timeout = server_timeout
        # The file system is the account's container of that name: checked, and created only when absent, through
        # the Blob endpoint as FileSystemClient.create_file_system does. In Azure Terraform creates it, and the
        # app's data role is on that container only, which allows the check but not a create.
        ensure_container(container, "file system", server_timeout)

    @classmethod
    def from_settings(cls, settings: Settings, **client_options: Any) -> AdlsLake:
        """The account URL with ``DefaultAzureCredential`` (managed identity in Azure), or a connection string."""
        lake = lake_connection(settings, dfs_endpoint, client_options)
        paths = lake.client_options(DataLakeRetry)
        blobs = lake.client_options(BlobRetry) | {"max_single_put_size": SINGLE_PUT_BYTES}
        with sdk_refused_settings(lake.connection_string):
            if lake.connection_string:
                file_system = FileSystemClient.from_connection_string(lake.connection_string, lake.file_system, **paths)
                container = ContainerClient.from_connection_string(lake.connection_string, lake.file_system, **blobs)
            else:
                credential = lake.credential()
                file_system = FileSystemClient(lake.account_url, lake.file_system, credential=credential, **paths)
                container = ContainerClient(blob_endpoint(lake.account_url), lake.file_system, credential, **blobs)
        store = cls(file_system, container, lake.server_timeout)
        store.max_request_seconds = lake.max_request_seconds
        return store

    def read(self, path: str) -> bytes:
        name = check_relative_path(path)
        with lake_errors(f"read {name}"):
            return bytes(self.file_system.get_file_client(name).download_file(timeout=self.server_timeout).readall())

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        name = check_relative_path(path)
        file = self.file_system.get_file_client(name)
        return download_versioned(name, lambda: file.download_file(timeout=self.server_timeout))

    def delete(self, path: str) -> None:
        name = check_relative_path(path)
        with lake_errors(f"delete {name}"):
            try:
                self.file_system.get_file_client(name).delete_file(timeout=self.server_timeout)
            except ResourceNotFoundError as error:
                if container_gone(error):
                    raise

    def list_paths(self, prefix: str) -> list[str]:
        return sorted(self.list_modified(prefix))

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        directory = check_relative_path(prefix)
        with lake_errors(f"list {directory}"):
            try:
                paths = list(self.file_system.get_paths(path=directory, recursive=True, timeout=self.server_timeout))
            except ResourceNotFoundError as error:  # no such directory; a file system that is gone is raised
                if container_gone(error):
                    raise
                return {}
        listed = sorted(
            (p for p in paths if not p.is_directory and not p.name.startswith(TEMPORARY_DIRECTORY + "/")),
            key=lambda p: p.name,
        )
        return {p.name: epoch_ms(p.last_modified) for p in listed}
