"""Values no client can use are refused where the settings are read, naming the setting (a review's findings).

A malformed LAKE_CONNECTION_STRING was a ``ValueError`` traceback of the storage SDK at the first ``open_lake`` (the
tools) or every batch failing as infrastructure (the local host); LAKE_ACCOUNT_URL=garbage ran into the identity's
chatter; a KAFKA_BROKER_LIST entry without a port, or with one that is not a number, was taken.
"""

from __future__ import annotations

import pytest

from devhost.services.azurite import Azurite
from shared.errors import ConfigurationError
from shared.settings import load_settings

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.mark.parametrize("kind", ["blob", "adls"])
@pytest.mark.parametrize(
    "connection_string",
    [
        "garbage",
        f"garbage;AccountKey={KEY}",
        f"AccountKey={KEY}",  # the SDK: "missing required connection details"
        f"AccountName=;AccountKey={KEY}",
        f"AccountName=prodacct;AccountKey={KEY};BlobSecondaryEndpoint=https://prodacct-secondary.blob.core.windows.net",
        f"AccountName=prodacct;AccountKey={KEY};BlobEndpoint=ftp://prodacct.blob.core.windows.net",
        f"AccountName=prodacct;AccountKey={KEY};BlobEndpoint=https://",
        f"AccountName=prodacct;AccountKey={KEY};DefaultEndpointsProtocol=gopher",
    ],
    ids=["garbage", "a pair without =", "no account", "empty account", "secondary only", "ftp", "no host", "gopher"],
)
def test_a_connection_string_the_sdk_cannot_read_is_refused_naming_it_never_its_key(
    kind: str, connection_string: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"LAKE_KIND": kind, "LAKE_CONNECTION_STRING": connection_string})
    message = str(refused.value)
    assert message.startswith("invalid settings:\n  LAKE_CONNECTION_STRING: ") and len(message.splitlines()) == 2
    assert KEY not in message and "garbage" not in message and "prodacct" not in message


@pytest.mark.parametrize(
    "connection_string",
    [
        "UseDevelopmentStorage=true",
        Azurite(10000, 10001, 10002).connection_string,
        f"DefaultEndpointsProtocol=https;AccountName=prodacct;AccountKey={KEY};EndpointSuffix=core.windows.net;",
        f"AccountName=prodacct;AccountKey={KEY}",
        "BlobEndpoint=https://prodacct.blob.core.windows.net/;SharedAccessSignature=sv=2024&sig=S3CRET",
        f"AccountName=devstoreaccount1;AccountKey={KEY};BlobEndpoint=http://[::1]:10000/devstoreaccount1",
    ],
    ids=["emulator shorthand", "Azurite", "https account", "account only", "SAS", "ipv6 loopback"],
)
def test_connection_strings_the_sdk_reads_are_taken(connection_string: str) -> None:
    settings = load_settings({"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": connection_string})
    assert settings.lake_connection_string.get_secret_value() == connection_string


def test_a_local_lake_does_not_read_the_connection_string_or_the_account_url() -> None:
    settings = load_settings({"LAKE_CONNECTION_STRING": "garbage", "LAKE_ACCOUNT_URL": "garbage"})
    assert settings.lake_kind == "local"


@pytest.mark.parametrize("kind", ["blob", "adls"])
@pytest.mark.parametrize(
    "url",
    [
        "garbage",
        "prodacct.dfs.core.windows.net",
        "https://",
        "https://prodacct.dfs.core.windows.net:port",
        "https://prodacct.dfs.core.windows.net /",
        "ftp://prodacct.dfs.core.windows.net",
        "http://prodacct.dfs.core.windows.net",
    ],
)
def test_an_account_url_that_is_not_https_with_a_host_is_refused_in_one_line(kind: str, url: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"LAKE_KIND": kind, "LAKE_ACCOUNT_URL": url})
    (line,) = str(refused.value).splitlines()[1:]
    assert line.strip().startswith("LAKE_ACCOUNT_URL ") and "https://<account>.dfs.core.windows.net" in line


@pytest.mark.parametrize(
    "url",
    [
        "https://prodacct.dfs.core.windows.net",
        "https://prodacct.blob.core.windows.net/",
        "http://127.0.0.1:10000/devstoreaccount1",
        "http://localhost:10000/devstoreaccount1",
        "http://[::1]:10000/devstoreaccount1",
    ],
)
def test_https_account_urls_and_the_emulator_on_loopback_are_taken(url: str) -> None:
    assert load_settings({"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": url}).lake_account_url == url


@pytest.mark.parametrize(
    "brokers", ["127.0.0.1:abc", "127.0.0.1", ":9092", "127.0.0.1:9092,redpanda", "127.0.0.1:0", "127.0.0.1:65536"]
)
def test_a_broker_list_entry_that_is_not_host_port_is_refused_naming_it(brokers: str) -> None:
    with pytest.raises(ConfigurationError, match=r"KAFKA_BROKER_LIST must be HOST:PORT entries") as refused:
        load_settings({"KAFKA_BROKER_LIST": brokers})
    assert len(str(refused.value).splitlines()) == 2


@pytest.mark.parametrize("brokers", ["127.0.0.1:9092", "[::1]:9092", "localhost:9092, 127.0.0.1:19092", "::1:9092"])
def test_local_broker_lists_are_taken(brokers: str) -> None:
    assert load_settings({"KAFKA_BROKER_LIST": brokers}).kafka_broker_list == brokers


def test_an_event_hubs_broker_list_is_taken() -> None:
    settings = load_settings(
        {
            "KAFKA_BROKER_LIST": "evhns-x1y2.servicebus.windows.net:9093",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_USERNAME": "$ConnectionString",
        }
    )
    assert settings.kafka_broker_list == "evhns-x1y2.servicebus.windows.net:9093"


@pytest.mark.parametrize(
    ("url", "kind", "why"),
    [
        ("http://registry.example.com", "confluent", "must be https:// (http only to 127.0.0.1"),
        ("registry.example.com:8081", "confluent", "must be an https:// URL"),
        ("ftp://registry.example.com", "confluent", "must be an https:// URL"),
        ("https://", "confluent", "must be an https:// URL"),
        ("https://key:s3cret@registry.example.com", "confluent", "carries user information"),
        ("https://key:s3cret@ns.servicebus.windows.net", "eventhubs", "carries user information"),
        ("https://key:p4/s3cret+Q@registry.example.com", "confluent", "carries user information"),
        ("https://key:a?s3cret#b@registry.example.com", "confluent", "carries user information"),
        ("https://registry.example.com/team@prod", "confluent", "an @ in a path or query: write it %40"),
    ],
)
def test_a_schema_registry_url_the_client_would_refuse_is_refused_with_the_settings(
    url: str, kind: str, why: str
) -> None:
    """It passed, and failed an Avro source's first batch and each retry (the registry client refuses it)."""
    with pytest.raises(ConfigurationError) as refused:
        load_settings({"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_KIND": kind})
    (line,) = str(refused.value).splitlines()[1:]
    assert line.strip().startswith("SCHEMA_REGISTRY_URL ") and why in line and "s3cret" not in line, line


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("", "confluent"),
        ("https://psrc-abc.westeurope.azure.confluent.cloud", "confluent"),
        ("http://127.0.0.1:8081/registry", "confluent"),
        ("http://localhost:8081", "confluent"),
        ("ns.servicebus.windows.net", "eventhubs"),
        ("https://ns.servicebus.windows.net", "eventhubs"),
    ],
)
def test_https_registry_urls_a_loopback_one_and_a_bare_namespace_are_taken(url: str, kind: str) -> None:
    assert load_settings({"SCHEMA_REGISTRY_URL": url, "SCHEMA_REGISTRY_KIND": kind}).schema_registry_url == url
