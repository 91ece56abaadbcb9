"""Plain http is for the emulator on loopback only (a review's finding).

A connection string naming http for an Azure account sends the account's data and its shared-key-signed requests in
clear, and so would an account URL with the identity's token. ``lake_connection`` refuses both before any request,
naming the setting and never printing the connection string (it holds the key).
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.policies import HTTPPolicy
from pydantic import SecretStr

from devhost.services.azurite import Azurite
from shared.errors import ConfigurationError
from shared.lake.adls import AdlsLake, dfs_endpoint
from shared.lake.blob import BlobLake, blob_endpoint
from shared.lake.connection import lake_connection
from shared.settings import Settings, load_settings

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ACCOUNT = f"AccountName=prodacct;AccountKey={KEY}"

REFUSED_STRINGS = {
    "derived http endpoint": f"DefaultEndpointsProtocol=http;{ACCOUNT};EndpointSuffix=core.windows.net",
    "http, no suffix": f"DefaultEndpointsProtocol=http;{ACCOUNT}",
    "http BlobEndpoint": f"{ACCOUNT};BlobEndpoint=http://prodacct.blob.core.windows.net/",
    "http DfsEndpoint": f"{ACCOUNT};BlobEndpoint=https://prodacct.blob.core.windows.net/;"
    "DfsEndpoint=http://prodacct.dfs.core.windows.net/",
    "http on another host": f"{ACCOUNT};BlobEndpoint=http://10.0.0.4:10000/prodacct",
    "lower-case keys": f"defaultendpointsprotocol=http;accountname=prodacct;accountkey={KEY}",
    "SAS over http": "BlobEndpoint=http://prodacct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=S3CRET",
}
ACCEPTED_STRINGS = {
    "https": f"DefaultEndpointsProtocol=https;{ACCOUNT};EndpointSuffix=core.windows.net",
    "no protocol": ACCOUNT,
    "https BlobEndpoint": f"DefaultEndpointsProtocol=http;{ACCOUNT};BlobEndpoint=https://prodacct.blob.core.windows.net/",
    "emulator shorthand": "UseDevelopmentStorage=true",
    "Azurite": Azurite(10000, 10001, 10002).connection_string,
    "localhost": f"DefaultEndpointsProtocol=http;{ACCOUNT};BlobEndpoint=http://localhost:10000/prodacct",
    "ipv6 loopback": f"DefaultEndpointsProtocol=http;{ACCOUNT};BlobEndpoint=http://[::1]:10000/prodacct",
}


def _connect(settings: dict[str, str]) -> Any:
    return lake_connection(load_settings({"LAKE_KIND": "blob"} | settings), blob_endpoint, {})


def _unchecked(values: dict[str, Any]) -> Settings:
    """Settings the loader would refuse (it checks these rules too), to show the stores refuse them on their own."""
    return Settings.model_construct(**(Settings().model_dump() | values))


@pytest.mark.parametrize("connection_string", REFUSED_STRINGS.values(), ids=REFUSED_STRINGS.keys())
def test_a_connection_string_over_plain_http_off_loopback_is_refused(connection_string: str) -> None:
    with pytest.raises(ConfigurationError, match="LAKE_CONNECTION_STRING") as refused:
        _connect({"LAKE_CONNECTION_STRING": connection_string})
    assert KEY not in str(refused.value) and "S3CRET" not in str(refused.value)
    assert "prodacct" not in str(refused.value)


@pytest.mark.parametrize("connection_string", ACCEPTED_STRINGS.values(), ids=ACCEPTED_STRINGS.keys())
def test_https_and_the_emulator_on_loopback_are_accepted(connection_string: str) -> None:
    assert _connect({"LAKE_CONNECTION_STRING": connection_string}).connection_string == connection_string


@pytest.mark.parametrize(
    ("account_url", "accepted"),
    [
        ("https://prodacct.dfs.core.windows.net", True),
        ("http://127.0.0.1:10000/devstoreaccount1", True),
        ("prodacct.dfs.core.windows.net", False),  # the SDKs prefix https://; the loader asks for the URL
        ("http://prodacct.dfs.core.windows.net", False),
        ("HTTP://prodacct.blob.core.windows.net", False),
    ],
)
def test_an_account_url_over_plain_http_off_loopback_is_refused(account_url: str, accepted: bool) -> None:
    if accepted:
        settings = load_settings({"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": account_url})
        assert lake_connection(settings, dfs_endpoint, {}).account_url == dfs_endpoint(account_url)
        return
    with pytest.raises(ConfigurationError, match="LAKE_ACCOUNT_URL"):
        load_settings({"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": account_url})
    if account_url.lower().startswith("http:"):  # and the connection refuses it when the loader is bypassed
        with pytest.raises(ConfigurationError, match="LAKE_ACCOUNT_URL"):
            lake_connection(_unchecked({"lake_kind": "adls", "lake_account_url": account_url}), dfs_endpoint, {})


class _Refuse(HTTPPolicy):  # type: ignore[misc]
    """Records every request's URL and answers none (no network needed)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def send(self, request: Any) -> Any:
        self.urls.append(request.http_request.url)
        raise ServiceResponseError("injected: not sent")


@pytest.mark.parametrize("store", [BlobLake, AdlsLake])
def test_a_store_on_a_plain_http_connection_string_sends_nothing(store: Any) -> None:
    """The reviewer's case: ``DefaultEndpointsProtocol=http`` for an Azure account, no explicit endpoint."""
    refuse = _Refuse()
    connection_string = REFUSED_STRINGS["derived http endpoint"]
    with pytest.raises(ConfigurationError, match="LAKE_CONNECTION_STRING"):  # refused as the settings are read
        load_settings({"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": connection_string})
    settings = _unchecked({"lake_kind": "blob", "lake_connection_string": SecretStr(connection_string)})
    with pytest.raises(ConfigurationError):
        store.from_settings(settings, _additional_pipeline_policies=[refuse], retry_total=0)
    assert not refuse.urls
