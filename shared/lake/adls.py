"""The production lake: ADLS Gen2 through azure-storage-file-datalake, managed identity by default.

A file is uploaded under ``_tmp/`` and then renamed into place; a rename in a hierarchical
namespace is atomic and replaces the destination, so readers never see a partial file.
"""

from __future__ import annotations

import uuid
from contextlib import suppress
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.filedatalake import FileSystemClient

from shared.errors import WriteConflict
from shared.lake.connection import lake_connection
from shared.lake.sdk_errors import CONDITION_FAILED, download_versioned, lake_errors, write_conditions
from shared.layout import check_relative_path
from shared.settings import Settings

TEMPORARY_DIRECTORY = "_tmp"


def dfs_endpoint(account_url: str) -> str:
    """The Data Lake endpoint of a storage account given by either its blob or its dfs URL."""
    return account_url.replace(".blob.core.", ".dfs.core.")


class AdlsLake:
    """Files in one ADLS Gen2 file system."""

    def __init__(self, file_system: FileSystemClient) -> None:
        self.file_system = file_system
        self._directories: set[str] = set()
        with lake_errors(f"create file system {file_system.file_system_name}"), suppress(ResourceExistsError):
            file_system.create_file_system()

    @classmethod
    def from_settings(cls, settings: Settings, **client_options: Any) -> AdlsLake:
        """The account URL with ``DefaultAzureCredential`` (managed identity in Azure), or a connection string."""
        lake = lake_connection(settings, dfs_endpoint, client_options)
        if lake.connection_string:
            return cls(
                FileSystemClient.from_connection_string(lake.connection_string, lake.file_system, **lake.options)
            )
        return cls(FileSystemClient(lake.account_url, lake.file_system, credential=lake.credential(), **lake.options))

    def write_atomic(self, path: str, data: bytes) -> None:
        name = check_relative_path(path)
        with lake_errors(f"write {name}"):
            self._stage(data).rename_file(self._qualified(name))

    def _stage(self, data: bytes) -> Any:
        staged = self.file_system.get_file_client(f"{TEMPORARY_DIRECTORY}/{uuid.uuid4().hex}.part")
        staged.upload_data(data, overwrite=True)
        return staged

    def _qualified(self, name: str) -> str:
        """The rename destination: ``<file system>/<path>``, its directory created first."""
        self._ensure_directory(name.rpartition("/")[0])
        return f"{self.file_system.file_system_name}/{name}"

    def _ensure_directory(self, directory: str) -> None:
        """Create the rename's destination directory once per process; never touch an existing one."""
        if not directory or directory in self._directories:
            return
        with suppress(ResourceExistsError):
            self.file_system.get_directory_client(directory).create_directory(match_condition=MatchConditions.IfMissing)
        self._directories.add(directory)

    def read(self, path: str) -> bytes:
        name = check_relative_path(path)
        with lake_errors(f"read {name}"):
            return bytes(self.file_system.get_file_client(name).download_file().readall())

    def exists(self, path: str) -> bool:
        name = check_relative_path(path)
        with lake_errors(f"check {name}"):
            return bool(self.file_system.get_file_client(name).exists())

    def delete(self, path: str) -> None:
        name = check_relative_path(path)
        with lake_errors(f"delete {name}"), suppress(ResourceNotFoundError):
            self.file_system.get_file_client(name).delete_file()

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        name = check_relative_path(path)
        return download_versioned(name, self.file_system.get_file_client(name).download_file)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        """Stage, then rename onto ``path`` on the condition; the rename is the atomic step."""
        name = check_relative_path(path)
        condition = write_conditions(version)
        with lake_errors(f"write {name}"):
            staged = self._stage(data)
            try:
                renamed = staged.rename_file(self._qualified(name), **condition)
            except CONDITION_FAILED as error:
                staged.delete_file()
                raise WriteConflict(f"{name} changed since version {version}") from error
            return str(renamed.get_file_properties().etag)

    def list_paths(self, prefix: str) -> list[str]:
        directory = check_relative_path(prefix)
        with lake_errors(f"list {directory}"):
            try:
                paths = list(self.file_system.get_paths(path=directory, recursive=True))
            except ResourceNotFoundError:
                return []
        return sorted(p.name for p in paths if not p.is_directory and not p.name.startswith(TEMPORARY_DIRECTORY + "/"))
