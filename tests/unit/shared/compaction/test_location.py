"""Where curated/<source> lives for each lake store: identity by default, no plain HTTP off loopback."""

from __future__ import annotations

import pytest

from shared.compaction.location import delta_location
from shared.errors import ConfigurationError
from shared.settings import load_settings


def test_delta_locations_per_store() -> None:
    local = delta_location(load_settings({"LAKE_LOCAL_ROOT": "/tmp/lake"}), "sensors")
    assert local.uri == "/tmp/lake/curated/sensors"
    azurite = delta_location(
        load_settings({"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": "UseDevelopmentStorage=true"}), "sensors"
    )
    assert azurite.uri == "az://lake/curated/sensors"
    assert azurite.storage_options["azure_endpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    identity = delta_location(
        load_settings({"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": "https://stlake.dfs.core.windows.net"}),
        "sensors",
        {"IDENTITY_ENDPOINT": "http://localhost:8081/msi/token"},
    )
    assert identity.uri == "abfss://lake@stlake.dfs.core.windows.net/curated/sensors"
    assert identity.storage_options == {
        "azure_storage_account_name": "stlake",
        "azure_msi_endpoint": "http://localhost:8081/msi/token",
    }
    assert "key" not in repr(identity)


def test_plain_http_is_refused_off_loopback() -> None:
    remote = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://example.com/a"
    with pytest.raises(ConfigurationError, match="loopback"):
        delta_location(load_settings({"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": remote}), "sensors")


@pytest.mark.parametrize("url", ["https://acct.dfs.core.chinacloudapi.cn", "https://acct.dfs.core.usgovcloudapi.net"])
def test_an_account_outside_public_azure_is_refused_not_written_to_a_public_host_of_its_name(url: str) -> None:
    """The Delta writer's abfss URI named <account>.dfs.core.windows.net whatever cloud LAKE_ACCOUNT_URL was in."""
    with pytest.raises(ConfigurationError, match="public Azure only"):
        delta_location(load_settings({"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": url}), "orders")
