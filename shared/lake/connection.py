"""How the Azure lake stores connect: a connection string (Azurite, local) or the account URL with identity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ConfigurationError
from shared.settings import Settings

SDK_RETRIES: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.5, "connection_timeout": 10}


@dataclass(frozen=True)
class LakeConnection:
    file_system: str
    connection_string: str = ""
    account_url: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def credential(self) -> Any:
        """``DefaultAzureCredential``: the managed identity in Azure, a developer's login elsewhere."""
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()


def lake_connection(
    settings: Settings, endpoint: Callable[[str], str], client_options: dict[str, Any]
) -> LakeConnection:
    """The connection string when set, else ``endpoint(LAKE_ACCOUNT_URL)``; SDK retries kept short."""
    options = SDK_RETRIES | client_options
    connection_string = settings.lake_connection_string.get_secret_value()
    if connection_string:
        return LakeConnection(settings.lake_file_system, connection_string=connection_string, options=options)
    if settings.lake_account_url:
        return LakeConnection(
            settings.lake_file_system, account_url=endpoint(settings.lake_account_url), options=options
        )
    raise ConfigurationError(
        f"LAKE_KIND={settings.lake_kind} needs LAKE_ACCOUNT_URL (identity) or LAKE_CONNECTION_STRING"
    )
