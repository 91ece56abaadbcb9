"""Where ``curated/<source>`` lives for each lake store, as a Delta table URI and object-store options.

- ``local``: a directory under ``LAKE_LOCAL_ROOT``.
- ``blob`` (Azurite, or any Blob account): ``az://<container>/curated/<source>`` with the account
  name and key of the connection string, and its Blob endpoint (HTTP allowed only for a loopback
  endpoint, i.e. the emulator).
- ``adls``: ``abfss://<file system>@<account>.dfs.core.windows.net/curated/<source>`` (public Azure only) with the
  managed identity (no key). On App Service and Functions the platform exposes the identity at
  ``IDENTITY_ENDPOINT``; the object store is pointed at it, and it sends ``IDENTITY_HEADER``.
  A connection string, when set, is used instead (as the other stores do).
Pure: the environment is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.errors import ConfigurationError
from shared.hosts import LOOPBACK_HOSTS
from shared.layout import safe_segment
from shared.settings import Settings

CURATED_AREA = "curated"
PUBLIC_CLOUD_DOMAINS = frozenset({"dfs.core.windows.net", "blob.core.windows.net"})
DEVELOPMENT_ACCOUNT = "devstoreaccount1"
DEVELOPMENT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True, slots=True)
class DeltaLocation:
    uri: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)


def curated_path(source: str) -> str:
    return f"{CURATED_AREA}/{safe_segment(source)}"


def delta_location(settings: Settings, source: str, environ: Mapping[str, str] | None = None) -> DeltaLocation:
    """The curated table of ``source`` on the store ``LAKE_KIND`` names."""
    env = environ or {}
    relative = curated_path(source)
    if settings.lake_kind == "local":
        return DeltaLocation(str((Path(settings.lake_local_root) / relative).resolve()))
    connection_string = settings.lake_connection_string.get_secret_value()
    container = settings.lake_file_system
    if connection_string:
        return _with_key(connection_string, container, relative)
    if not settings.lake_account_url:
        raise ConfigurationError(f"LAKE_KIND={settings.lake_kind} needs LAKE_ACCOUNT_URL or LAKE_CONNECTION_STRING")
    host = (urlsplit(settings.lake_account_url).hostname or "").lower()
    account, _, domain = host.partition(".")
    if not account:
        raise ConfigurationError(f"cannot read the account name from LAKE_ACCOUNT_URL {settings.lake_account_url!r}")
    if domain not in PUBLIC_CLOUD_DOMAINS:  # the Delta writer names public Azure's hosts and token audience only
        raise ConfigurationError(
            f"LAKE_ACCOUNT_URL {settings.lake_account_url!r}: compaction writes the curated table in public Azure "
            f"only (<account>.dfs.core.windows.net); it would reach a host of that name there, not this account"
        )
    options = {"azure_storage_account_name": account}
    if env.get("IDENTITY_ENDPOINT"):
        options["azure_msi_endpoint"] = env["IDENTITY_ENDPOINT"]
    if env.get("AZURE_CLIENT_ID"):  # a user-assigned identity; the system-assigned one needs none
        options["azure_client_id"] = env["AZURE_CLIENT_ID"]
    return DeltaLocation(f"abfss://{container}@{account}.dfs.core.windows.net/{relative}", options)


def _with_key(connection_string: str, container: str, relative: str) -> DeltaLocation:
    parts = dict(item.split("=", 1) for item in connection_string.strip().strip(";").split(";") if "=" in item)
    if parts.get("UseDevelopmentStorage", "").lower() == "true":
        parts = {
            "AccountName": DEVELOPMENT_ACCOUNT,
            "AccountKey": DEVELOPMENT_KEY,
            "BlobEndpoint": f"http://127.0.0.1:10000/{DEVELOPMENT_ACCOUNT}",
        }
    account, key = parts.get("AccountName", ""), parts.get("AccountKey", "")
    if not account or not key:
        raise ConfigurationError("LAKE_CONNECTION_STRING needs AccountName and AccountKey for the curated table")
    options = {"azure_storage_account_name": account, "azure_storage_account_key": key}
    endpoint = parts.get("BlobEndpoint")
    if endpoint:
        options["azure_endpoint"] = endpoint.rstrip("/")
        if urlsplit(endpoint).scheme == "http":
            if urlsplit(endpoint).hostname not in LOOPBACK_HOSTS:
                raise ConfigurationError("a plain-HTTP BlobEndpoint is accepted only on loopback (the emulator)")
            options["azure_allow_http"] = "true"
    return DeltaLocation(f"az://{container}/{relative}", options)
