"""The one place that reads app settings.

Global settings live on :class:`Settings`; every registered source adds its own block of
``<SOURCE>_*`` settings read by :class:`SourceSettings`. :func:`app_setting_names` lists
every name the code reads, which the tests compare with ``local.settings.example.json``,
the Terraform app settings and the README table.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigurationError
from shared.hosts import LOOPBACK_HOSTS
from shared.layout import NAME_BYTES, longest_file_name_bytes
from shared.ncrontab import Schedule, ScheduleError

LakeFormat = Literal["parquet", "avro", "jsonl"]

LakeKind = Literal["local", "blob", "adls"]
KafkaSecurity = Literal["PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "OAUTHBEARER"]
KafkaProducerCredential = Literal["", "managedidentity"]
SchemaRegistryKind = Literal["confluent", "eventhubs"]

# Read by the Functions host or the platform, not by this code; Terraform may set them.
PLATFORM_SETTINGS = frozenset(
    {
        "FUNCTIONS_WORKER_RUNTIME",
        "FUNCTIONS_EXTENSION_VERSION",
        "AzureWebJobsStorage",
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__credential",
        "AzureWebJobsStorage__blobServiceUri",
        "AzureWebJobsStorage__queueServiceUri",
        "AzureWebJobsStorage__tableServiceUri",
        "AzureWebJobsFeatureFlags",
        # The Durable Task Scheduler backend (terraform var.durable_backend = dts_*): host.json's
        # durableTask settings overridden by app setting, and the connection they name.
        "AzureFunctionsJobHost__extensions__durableTask__hubName",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__type",
        "AzureFunctionsJobHost__extensions__durableTask__storageProvider__connectionStringName",
        "DURABLE_TASK_SCHEDULER_CONNECTION_STRING",
    }
)


class Settings(BaseSettings):
    """Settings shared by every function. Field aliases are the app-setting names."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", populate_by_name=True)

    kafka_broker_list: str = Field(
        "127.0.0.1:9092",
        alias="KAFKA_BROKER_LIST",
        description="Kafka bootstrap servers: Redpanda locally, `<namespace>.servicebus.windows.net:9093` in Azure.",
    )
    kafka_security_protocol: KafkaSecurity = Field(
        "PLAINTEXT",
        alias="KAFKA_SECURITY_PROTOCOL",
        description=(
            "PLAINTEXT locally (a broker on this machine only); SASL_SSL (SASL PLAIN) for Event Hubs. Read when "
            "functions are indexed."
        ),
    )
    kafka_sasl_username: str = Field(
        "",
        alias="KAFKA_SASL_USERNAME",
        description="SASL user; `$ConnectionString` for Event Hubs.",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        "PLAIN",
        alias="KAFKA_SASL_MECHANISM",
        description=(
            "With SASL_SSL, how the Kafka triggers authenticate: PLAIN (Event Hubs SAS connection strings, "
            "`<SOURCE>_KAFKA_SASL_PASSWORD`) or OAUTHBEARER (OIDC client credentials of a service principal, "
            "`KAFKA_OAUTH_*`). Read when functions are indexed."
        ),
    )
    kafka_producer_credential: KafkaProducerCredential = Field(
        "",
        alias="KAFKA_PRODUCER_CREDENTIAL",
        description=(
            "`managedidentity`: the generators' producer authenticates to Event Hubs' Kafka endpoint with the app's "
            "Entra ID identity (SASL OAUTHBEARER over SASL_SSL, a token for `https://<namespace>/.default`; needs "
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL and an Event Hubs KAFKA_BROKER_LIST). Empty: as the triggers "
            "connect (PLAINTEXT locally, or the `KAFKA_OAUTH_*` client credentials); SASL PLAIN has no producer key."
        ),
    )
    kafka_oauth_client_id: str = Field(
        "",
        alias="KAFKA_OAUTH_CLIENT_ID",
        description="OAUTHBEARER only: application (client) id of the service principal the Kafka bindings use.",
    )
    kafka_oauth_client_secret: SecretStr = Field(
        SecretStr(""),
        alias="KAFKA_OAUTH_CLIENT_SECRET",
        description="OAUTHBEARER only: its client secret; in Azure a Key Vault reference.",
    )
    kafka_oauth_token_endpoint_url: str = Field(
        "",
        alias="KAFKA_OAUTH_TOKEN_ENDPOINT_URL",
        description="OAUTHBEARER only: `https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token` (https only).",
    )
    kafka_oauth_scope: str = Field(
        "",
        alias="KAFKA_OAUTH_SCOPE",
        description="OAUTHBEARER only: `https://<namespace>.servicebus.windows.net/.default`.",
    )
    lake_kind: LakeKind = Field(
        "local",
        alias="LAKE_KIND",
        description="Where batches land: `local` directory, `blob` (Azurite) or `adls` (ADLS Gen2).",
    )
    lake_local_root: Path = Field(
        Path(".lake"),
        alias="LAKE_LOCAL_ROOT",
        description="Root directory of the local lake (LAKE_KIND=local).",
    )
    lake_account_url: str = Field(
        "",
        alias="LAKE_ACCOUNT_URL",
        description="ADLS Gen2 endpoint, `https://<account>.dfs.core.windows.net`; used with managed identity.",
    )
    lake_connection_string: SecretStr = Field(
        SecretStr(""),
        alias="LAKE_CONNECTION_STRING",
        description="Storage connection string (Azurite locally); leave empty in Azure to use identity.",
    )
    lake_file_system: str = Field(
        "lake",
        alias="LAKE_FILE_SYSTEM",
        description=(
            "File system (container) that holds `raw/` and `deadletter/`: 3-63 lowercase letters, digits, hyphens."
        ),
    )
    applicationinsights_connection_string: SecretStr = Field(
        SecretStr(""),
        alias="APPLICATIONINSIGHTS_CONNECTION_STRING",
        description="Application Insights connection string; metrics are exported only when set.",
    )
    applicationinsights_authentication_string: str = Field(
        "",
        alias="APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
        description=(
            "`Authorization=AAD` (system-assigned identity) or `ClientId=<id>;Authorization=AAD`: export with the "
            "app's Entra ID identity instead of the key; empty exports with the connection string alone."
        ),
    )
    max_record_bytes: int = Field(
        1_048_576,
        alias="MAX_RECORD_BYTES",
        gt=0,
        description="Records larger than this are dead-lettered as `oversized`.",
    )
    state_buckets: int | None = Field(
        None,
        alias="STATE_BUCKETS",
        ge=1,
        le=65_536,
        description=(
            "Entities per keyed source that hold its state, for a new deployment: each key hashes into one of N "
            "buckets, so a batch sends at most N entity operations. Unset, a new source takes "
            "`NEW_SOURCE_STATE_BUCKETS`, else the N its state size allows (clickstream and users 256; mobile and "
            "sensors 512). The lake records the N a deployment started "
            "with (`_state/buckets.json`) and that is what is used: see docs/scale.md to change it."
        ),
    )
    new_source_state_buckets: int | None = Field(
        None,
        alias="NEW_SOURCE_STATE_BUCKETS",
        ge=1,
        le=65_536,
        description=(
            "N for a keyed source the lake has neither recorded nor landed, when `STATE_BUCKETS` is unset: Terraform "
            "sets 8192 on the Azure Storage Durable backend (each bucket's state small enough for its table row) and "
            "leaves it unset on the Durable Task Scheduler (each source's own N). Unlike `STATE_BUCKETS` it never "
            "applies to a source that landed before the lake recorded N."
        ),
    )

    landing_lease_seconds: float = Field(
        150.0,
        alias="LANDING_LEASE_SECONDS",
        gt=0,
        le=3600,
        description=(
            "How long an unfinished landing is left to its writer before another instance removes its files and lands "
            "the records again; at least two of the lake's longest requests (66 s each on Azure) plus 2 s; at most "
            "3600."
        ),
    )
    compaction_grace_minutes: int = Field(
        15,
        alias="COMPACTION_GRACE_MINUTES",
        ge=0,
        le=1440,
        description="An hour of raw files is compacted this many minutes after it ends (room for late files).",
    )
    compaction_open_hours: bool = Field(
        False,
        alias="COMPACTION_OPEN_HOURS",
        description="Also compact the hour still open (local runs); later runs recompact it with its new files.",
    )
    compaction_target_file_mb: int = Field(
        128,
        alias="COMPACTION_TARGET_FILE_MB",
        ge=1,
        le=4096,
        description="Target size of a curated Delta file; an hour smaller than this is one file.",
    )
    schema_registry_kind: SchemaRegistryKind = Field(
        "confluent",
        alias="SCHEMA_REGISTRY_KIND",
        description=(
            "Schema registry of Avro sources: `confluent` (a Confluent-compatible REST API; schema id in the "
            "record) or `eventhubs` (the namespace's Event Hubs Schema Registry; id in the `content-type` header)."
        ),
    )
    schema_registry_url: str = Field(
        "",
        alias="SCHEMA_REGISTRY_URL",
        description=(
            "Confluent-compatible registry URL, https (http only to 127.0.0.1, localhost or ::1; empty: a config's "
            "`value.converter.schema.registry.url`; the local host serves its own), or "
            "`https://<namespace>.servicebus.windows.net` for `eventhubs`."
        ),
    )
    schema_registry_username: str = Field(
        "",
        alias="SCHEMA_REGISTRY_USERNAME",
        description=(
            "Basic-auth user of a Confluent-compatible registry (a Confluent Cloud API key); https only; sent only to"
            " SCHEMA_REGISTRY_URL (refused while it is empty), never to a registry a source's config names."
        ),
    )
    schema_registry_password: SecretStr = Field(
        SecretStr(""),
        alias="SCHEMA_REGISTRY_PASSWORD",
        description="Its secret; in Azure a Key Vault reference. Event Hubs' registry uses the app's identity.",
    )
    schema_registry_group: str = Field(
        "",
        alias="SCHEMA_REGISTRY_GROUP",
        description="`eventhubs` only: the schema group Avro sources register in and read from.",
    )

    @field_validator("state_buckets", "new_source_state_buckets", mode="before")
    @classmethod
    def _blank_buckets_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("lake_local_root", mode="before")
    @classmethod
    def _blank_root_is_the_default(cls, value: object) -> object:
        return Path(".lake") if value is None or (isinstance(value, str) and not value.strip()) else value

    @field_validator("applicationinsights_connection_string", mode="before")
    @classmethod
    def _telemetry_connection_readable(cls, value: object) -> object:
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(text, str):
            check_telemetry_connection(text.strip())
            return text.strip()
        return value

    @model_validator(mode="after")
    def _file_system_is_a_container_name(self) -> Self:
        """A name Azure Storage refuses would fail every batch, retried for ever, naming no setting."""
        name = self.lake_file_system
        if self.lake_kind != "local" and not (3 <= len(name) <= 63 and _CONTAINER_NAME.fullmatch(name)):
            raise ValueError(
                f"LAKE_FILE_SYSTEM must be a container name: 3-63 lowercase letters, digits and single hyphens, "
                f"starting and ending with a letter or digit; got {name!r}"
            )
        return self

    @field_validator("kafka_broker_list")
    @classmethod
    def _brokers_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("KAFKA_BROKER_LIST must name at least one host:port")
        for entry in (entry.strip() for entry in value.split(",")):
            if entry and broker_address_problem(entry):  # "127.0.0.1:abc" or no port: every connection would fail
                raise ValueError(
                    f"KAFKA_BROKER_LIST must be HOST:PORT entries separated by commas (a port from 1 to 65535), "
                    f"e.g. 127.0.0.1:9092 or <namespace>.servicebus.windows.net:9093; got {entry!r}"
                )
        return value.strip()

    @model_validator(mode="after")
    def _lake_endpoints_readable(self) -> Self:
        """The Azure lake's connection string and account URL in a form the storage SDKs read, checked where the
        settings are read: otherwise a malformed one is a ``ValueError`` traceback of the SDK's at the first
        ``open_lake`` (a tool), or every batch failing as infrastructure (the host). Never quotes the connection
        string: it holds the account key or a SAS."""
        if self.lake_kind == "local":
            return self
        if problem := lake_connection_string_problem(self.lake_connection_string.get_secret_value()):
            raise ValueError(f"LAKE_CONNECTION_STRING: {problem}")
        if self.lake_account_url and (problem := lake_url_problem(self.lake_account_url)):
            shown = _shown(self.lake_account_url.split("?")[0])  # no query: a SAS would be a secret
            raise ValueError(
                f"LAKE_ACCOUNT_URL {problem} (https://<account>.dfs.core.windows.net; http only for the emulator on "
                f"127.0.0.1, localhost or ::1); got {shown}"
            )
        return self

    @model_validator(mode="after")
    def _schema_registry_url_usable(self) -> Self:
        """Checked where the settings are read, as the registry client checks it: otherwise an http:// URL to another
        host passed every check and failed an Avro source's first batch, and each retry. Never quotes user
        information (a URL with ``user:secret@`` holds a secret)."""
        url = self.schema_registry_url.strip()
        if not url or (self.schema_registry_kind == "eventhubs" and "://" not in url):  # a bare namespace host
            return self
        parsed = urlsplit(url)
        if "@" in url:  # anywhere: a secret holding / ? or # ends urlsplit's netloc before its @
            raise ValueError(
                "SCHEMA_REGISTRY_URL carries user information (user:secret@): a secret does not belong in a URL; "
                "set SCHEMA_REGISTRY_USERNAME and SCHEMA_REGISTRY_PASSWORD (eventhubs: the app's identity); an @ in "
                "a path or query: write it %40"
            )
        shown = _shown(url.split("?")[0])
        if parsed.scheme.lower() not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"SCHEMA_REGISTRY_URL must be an https:// URL; got {shown}")
        plain_http = self.schema_registry_kind == "confluent" and parsed.scheme.lower() != "https"
        if plain_http and parsed.hostname not in LOOPBACK_HOSTS:
            raise ValueError(
                "SCHEMA_REGISTRY_URL must be https:// (http only to 127.0.0.1, localhost or ::1): over http the "
                f"schemas records are read with, and any credentials, cross the network in clear; got {shown}"
            )
        return self

    @field_validator("applicationinsights_authentication_string")
    @classmethod
    def _authentication_string_is_aad(cls, value: str) -> str:
        if value.strip():
            telemetry_identity(value)  # raises ValueError with the setting's name
        return value.strip()

    @model_validator(mode="after")
    def _kafka_authentication_complete(self) -> Self:
        """Each protocol and mechanism with what it needs: a half-set one would fail on every connection (or, with
        PLAINTEXT, connect without the authentication that was meant), never as a settings error naming names."""
        token_url = self.kafka_oauth_token_endpoint_url.strip()
        if token_url and urlsplit(token_url).scheme.lower() != "https":
            # librdkafka (and the Kafka extension) POST the client id and secret there: over http, in clear text
            raise ValueError("KAFKA_OAUTH_TOKEN_ENDPOINT_URL must be an https:// URL; the client secret is sent to it")
        if self.kafka_producer_credential == "managedidentity":
            if self.kafka_security_protocol != "SASL_SSL":
                raise ValueError(
                    f"KAFKA_PRODUCER_CREDENTIAL=managedidentity needs KAFKA_SECURITY_PROTOCOL=SASL_SSL (Event Hubs); "
                    f"with KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} nothing would authenticate"
                )
            eventhubs_namespace_host(self.kafka_broker_list)  # raises ValueError naming the settings
        if self.kafka_security_protocol != "SASL_SSL":
            if eventhubs := [host for host in broker_hosts(self.kafka_broker_list) if is_eventhubs_host(host)]:
                raise ValueError(
                    f"KAFKA_BROKER_LIST names Event Hubs ({eventhubs[0]}), whose Kafka endpoint takes "
                    f"KAFKA_SECURITY_PROTOCOL=SASL_SSL only; got {self.kafka_security_protocol}"
                )
            if self.kafka_sasl_mechanism == "OAUTHBEARER":
                raise ValueError(
                    f"KAFKA_SASL_MECHANISM=OAUTHBEARER needs KAFKA_SECURITY_PROTOCOL=SASL_SSL; with "
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} nothing would authenticate"
                )
            if remote := [host for host in broker_hosts(self.kafka_broker_list) if not is_loopback(host)]:
                raise ValueError(
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} (no TLS, no authentication) is accepted "
                    f"only for a broker on this machine (127.0.0.1, localhost, [::1]: Redpanda or the embedded one); "
                    f"KAFKA_BROKER_LIST names {remote[0]}: use SASL_SSL"
                )
            return self
        if self.kafka_sasl_mechanism == "PLAIN":
            if not self.kafka_sasl_username.strip():
                raise ValueError(
                    "KAFKA_SECURITY_PROTOCOL=SASL_SSL with KAFKA_SASL_MECHANISM=PLAIN needs KAFKA_SASL_USERNAME "
                    "($ConnectionString for Event Hubs)"
                )
            return self
        if self.kafka_sasl_mechanism == "OAUTHBEARER":
            missing = [
                name
                for name, value in (
                    ("KAFKA_OAUTH_CLIENT_ID", self.kafka_oauth_client_id),
                    ("KAFKA_OAUTH_CLIENT_SECRET", self.kafka_oauth_client_secret.get_secret_value()),
                    ("KAFKA_OAUTH_TOKEN_ENDPOINT_URL", self.kafka_oauth_token_endpoint_url),
                    ("KAFKA_OAUTH_SCOPE", self.kafka_oauth_scope),
                )
                if not value.strip()
            ]
            if missing:
                raise ValueError(f"KAFKA_SASL_MECHANISM=OAUTHBEARER needs {', '.join(missing)}")
        return self


def broker_address_problem(address: str) -> str | None:
    """Why ``address`` is not a broker's HOST:PORT (``--broker``, each entry of KAFKA_BROKER_LIST); None when it is.
    HOST is anything not empty (a name, an IPv4 address or a bracketed IPv6 one, ``[::1]``), PORT a TCP port."""
    host, _, port = address.rpartition(":")
    if not host.strip() or not port.isascii() or not port.isdigit() or not 0 < int(port) <= 65_535:
        return f"expected HOST:PORT, got {address!r}"
    return None


def lake_url_problem(url: str) -> str | None:
    """Why ``url`` (an account URL, or an endpoint of a connection string) cannot be the lake's endpoint; None when
    it can: https with a host name, or http to the emulator on loopback (``shared.lake.connection``'s rule: the
    key, a signature or a token would otherwise go out in clear). Never quotes the URL."""
    if _UNSAFE_URL_CHARACTER.search(url):
        return "must not contain whitespace or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a port that is not a number raises)
    except ValueError:
        return "is not a URL with a valid host and port"
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in ("https", "http") or not host:
        return "must be an https:// URL with a host name"
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        return "must be https (plain http is for the emulator on loopback only)"
    return None


_UNSAFE_URL_CHARACTER = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def lake_connection_string_problem(connection_string: str) -> str | None:
    """Why the storage SDKs would refuse LAKE_CONNECTION_STRING (``ValueError`` at the first client), or an endpoint
    it names is not one for the lake (:func:`lake_url_problem`); None when it is empty or usable. Read as the SDKs
    read it (``parse_connection_str``): ``key=value`` pairs separated by ``;``, then ``UseDevelopmentStorage=true``
    (the emulator), a ``BlobEndpoint``, or an ``AccountName`` the Blob endpoint is derived from. Never quotes a
    value: the string holds the account key or a SAS."""
    if not connection_string:
        return None
    pairs = [item.split("=", 1) for item in connection_string.rstrip(";").split(";")]
    if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
        return (
            "malformed: key=value pairs separated by ';' are expected (AccountName=...;AccountKey=...;"
            "EndpointSuffix=core.windows.net, or UseDevelopmentStorage=true for Azurite)"
        )
    values = {key.upper(): value for key, value in pairs}
    if values.get("USEDEVELOPMENTSTORAGE") == "true":
        return None  # the emulator on 127.0.0.1
    if "BLOBENDPOINT" not in values and "BLOBSECONDARYENDPOINT" in values:
        return "a BlobSecondaryEndpoint without a BlobEndpoint: the BlobEndpoint is needed"
    if "BLOBENDPOINT" not in values and not values.get("ACCOUNTNAME", "").strip():
        return "neither a BlobEndpoint nor an AccountName (or UseDevelopmentStorage=true for Azurite) is named"
    endpoints = {key: value for key, value in values.items() if key.endswith("ENDPOINT")}
    if "BLOBENDPOINT" not in values:  # derived by the SDKs, and http when the protocol says so
        protocol = values.get("DEFAULTENDPOINTSPROTOCOL", "https")
        suffix = values.get("ENDPOINTSUFFIX", "core.windows.net")
        endpoints["the Blob endpoint derived from DefaultEndpointsProtocol, AccountName and EndpointSuffix"] = (
            f"{protocol}://{values['ACCOUNTNAME'].strip()}.blob.{suffix}"
        )
    names = {key.upper(): key for key, _ in pairs}
    for key, url in endpoints.items():
        if problem := lake_url_problem(url):
            return f"{names.get(key, key)} {problem}"
    return None


def broker_hosts(broker_list: str) -> list[str]:
    """The hosts of a Kafka broker list (``host:port,host:port``), lowercased."""
    entries = (entry.strip() for entry in broker_list.split(","))
    return [entry.rsplit(":", 1)[0].lower() if ":" in entry else entry.lower() for entry in entries if entry]


def is_loopback(host: str) -> bool:
    """Whether a broker host (as ``broker_hosts`` gives it) is this machine: ``localhost`` or a loopback address."""
    address = host.removeprefix("[").removesuffix("]")
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def eventhubs_namespace_host(broker_list: str) -> str:
    """The Event Hubs namespace a Kafka broker list names: ``evhns-x.servicebus.windows.net:9093`` gives
    ``evhns-x.servicebus.windows.net``, the host whose ``/.default`` scope a token for its Kafka endpoint is for.
    Anything else (a local broker) raises ``ValueError``."""
    first = broker_list.split(",")[0].strip()
    host = (broker_hosts(first) or [""])[0]
    if not is_eventhubs_host(host):
        raise ValueError(
            "KAFKA_PRODUCER_CREDENTIAL=managedidentity needs KAFKA_BROKER_LIST to be an Event Hubs namespace's Kafka "
            f"endpoint, <namespace>.servicebus.windows.net:9093 (the token is for that namespace); got {first!r}"
        )
    return host


def is_eventhubs_host(host: str) -> bool:
    """Whether a lowercased broker host is an Event Hubs namespace's: ``<namespace>.servicebus.<cloud's domain>``."""
    name, _, domain = host.partition(".")
    return bool(name) and domain.startswith("servicebus.")


_CONTAINER_NAME = re.compile(r"[a-z0-9](?:-?[a-z0-9])+")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def check_telemetry_connection(connection_string: str) -> None:
    """Raise ``ValueError`` naming APPLICATIONINSIGHTS_CONNECTION_STRING unless the Azure Monitor exporter reads it:
    ``key=value`` pairs separated by ``;`` (no empty pair), an ``InstrumentationKey`` that is a lowercase UUID, and
    no ``Authorization`` but ``ikey``. Empty means not exported."""
    if not connection_string:
        return
    pairs = [part.split("=") for part in connection_string.split(";")]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError(
            "APPLICATIONINSIGHTS_CONNECTION_STRING must be key=value pairs separated by ';' "
            "(InstrumentationKey=<uuid>;IngestionEndpoint=https://...), with no empty pair or '=' in a value"
        )
    values = {key.lower(): value for key, value in pairs}
    if not _UUID.fullmatch(values.get("instrumentationkey", "")):
        raise ValueError("APPLICATIONINSIGHTS_CONNECTION_STRING needs an InstrumentationKey that is a lowercase UUID")
    if values.get("authorization", "ikey").lower() != "ikey":
        raise ValueError(
            "APPLICATIONINSIGHTS_CONNECTION_STRING: Authorization must be ikey (Entra ID export is set by "
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING)"
        )


def telemetry_identity(authentication_string: str) -> str | None:
    """The managed identity's client id an APPLICATIONINSIGHTS_AUTHENTICATION_STRING names (None: system-assigned).

    The format is the one Application Insights documents, ``Authorization=AAD`` optionally preceded by
    ``ClientId=<client id>;``. Anything else raises ``ValueError``.
    """
    parts = {}
    for part in authentication_string.split(";"):
        key, sep, value = part.strip().partition("=")
        if not part.strip():
            continue
        if not sep or not value.strip():
            raise ValueError(f"APPLICATIONINSIGHTS_AUTHENTICATION_STRING: {part.strip()!r} is not key=value")
        parts[key.strip().lower()] = value.strip()
    if parts.get("authorization", "").upper() != "AAD" or set(parts) - {"authorization", "clientid"}:
        raise ValueError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be Authorization=AAD[;ClientId=<client id>]")
    return parts.get("clientid")


class SourceSettings(BaseSettings):
    """Per-source settings, read from ``<SOURCE>_<FIELD>`` (e.g. ``CLICKSTREAM_TOPIC``)."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    topic: str = Field(
        description=(
            "Kafka topic (event hub) the source is produced to and consumed from: letters, digits, `.`, `_`, `-`, "
            "at most 152 ASCII characters (the longest its lake files can be named by)."
        )
    )
    consumer_group: str = Field(description="Consumer group of the source's processing function.")
    format: LakeFormat = Field("parquet", description="Lake file format: parquet (zstd), avro or jsonl (gzip).")
    state_enabled: bool = Field(
        True, description="Keep keyed state in Durable entities (joins, anomaly flags); false only lands batches."
    )
    generator_enabled: bool = Field(True, description="Whether the timer generator produces this source.")
    generator_schedule: str = Field(
        "*/10 * * * * *", description="NCRONTAB (six fields, seconds first) of the source's generator."
    )
    generator_events_per_tick: int = Field(100, ge=0, le=100_000, description="Events produced per timer tick.")
    generator_iterations: int = Field(0, ge=0, description="Stop after this many events in total; 0 means never.")
    generator_seed: int | None = Field(
        None,
        ge=-(2**63),
        lt=2**63,
        description="Seed for reproducible events (a signed 64-bit integer); unset for random.",
    )
    lag_threshold: int = Field(
        1000,
        ge=1,
        lt=2**63,  # the extension's LagThreshold is a long
        description=(
            "Target-based scaling of process_<source>: instances = unprocessed events / this, at most one per "
            "partition. Read when functions are indexed."
        ),
    )
    kafka_sasl_password: SecretStr = Field(
        SecretStr(""),
        description="SASL PLAIN password of process_<source>; in Azure a Key Vault reference (listen-only rule).",
    )
    compaction_schedule: str = Field(
        "0 */15 * * * *", description="NCRONTAB of `compact_<source>`, which turns closed raw hours into curated Delta."
    )

    @field_validator("generator_seed", mode="before")
    @classmethod
    def _blank_seed_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("topic")
    @classmethod
    def _topic_is_a_kafka_topic(cls, value: str, info: ValidationInfo) -> str:
        if not _KAFKA_TOPIC.fullmatch(value) or value in (".", ".."):
            raise ValueError(
                f"{_setting_name(info)} must be a Kafka topic name: 1 to {MAX_TOPIC_LENGTH} of [a-zA-Z0-9._-], "
                f'not "." or ".."; got {value!r}'
            )
        if value.startswith("."):
            raise ValueError(
                f"{_setting_name(info)} must not start with '.' (an event hub's name cannot, and the raw files"
                f" landed for it would be hidden files); got {value!r}"
            )
        if (longest := longest_file_name_bytes(value)) > NAME_BYTES:
            most = len(value) - (longest - NAME_BYTES)
            raise ValueError(
                f"{_setting_name(info)} is too long for the lake: the files landed for it would take names of up to"
                f" {longest} bytes, {NAME_BYTES} at most; a topic of at most {most} characters; got {len(value)}"
            )
        return value

    @field_validator("consumer_group")
    @classmethod
    def _consumer_group_not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError(f"{_setting_name(info)} must name a consumer group")
        return value

    @field_validator("generator_schedule", "compaction_schedule")
    @classmethod
    def _schedule_is_ncrontab(cls, value: str, info: ValidationInfo) -> str:
        fields = value.split()
        if len(fields) != 6 or not all(_NCRONTAB_FIELD.fullmatch(field) for field in fields):
            raise ValueError(
                f"{_setting_name(info)} must be an NCRONTAB expression of six fields, seconds first "
                f'(e.g. "*/10 * * * * *" or "0 */15 * * * *"); got {value!r}'
            )
        try:  # values the Functions host refuses (second 99, day of week 7, a step of 0) stop every function;
            Schedule.parse(value).next_after(datetime.now(UTC))  # the 31st of February would never run it
        except ScheduleError as error:
            raise ValueError(f"{_setting_name(info)}: {value!r}: {error}") from None
        return value


MAX_TOPIC_LENGTH = 249  # Kafka's limit on a topic name
_KAFKA_TOPIC = re.compile(rf"[a-zA-Z0-9._-]{{1,{MAX_TOPIC_LENGTH}}}")
# One NCRONTAB field: a comma-separated list of ``*``, a number or a month/day name, or a range ``a-b``, each with an
# optional step ``/n``. The Functions host checks the values' ranges; this catches what is not a schedule at all.
_NCRONTAB_VALUE = r"(?:\*|[0-9]+|[A-Za-z]{3})"
_NCRONTAB_ITEM = rf"(?:\*|{_NCRONTAB_VALUE}(?:-{_NCRONTAB_VALUE})?)(?:/[0-9]+)?"
_NCRONTAB_FIELD = re.compile(rf"{_NCRONTAB_ITEM}(?:,{_NCRONTAB_ITEM})*")


# The source ``load_source_settings`` is validating, so that an error names the app setting (a BaseSettings model
# does not pass a validation context on to its validators).
_VALIDATING_SOURCE: ContextVar[str] = ContextVar("_VALIDATING_SOURCE", default="")


def _setting_name(info: ValidationInfo) -> str:
    """The app setting a per-source field is read from, when the source is known (``load_source_settings``)."""
    field = str(info.field_name)
    source = _VALIDATING_SOURCE.get()
    return source_setting_name(source, field) if source else f"<SOURCE>_{field.upper()}"


SOURCE_FIELDS = tuple(SourceSettings.model_fields)
_SECRET_FIELDS = frozenset(name for name, info in SourceSettings.model_fields.items() if info.annotation is SecretStr)


def source_setting_name(source: str, field: str) -> str:
    """App-setting name of one per-source field: ``source_setting_name("mobile", "topic") == "MOBILE_TOPIC"``."""
    if field not in SourceSettings.model_fields:
        raise KeyError(f"unknown source setting {field!r}")
    return f"{source.upper()}_{field.upper()}"


REGISTERED_DEFAULTS: dict[str, dict[str, str]] = {}  # filled by the source registry (``shared.sources``)


def source_defaults(source: str) -> dict[str, str]:
    """Defaults of the settings that have none in the model: topic = source name, group = ``<source>-processor``;
    a Datagen config source adds its own (topic, rate, iterations, seed: ``Source.setting_defaults``), which the
    source registry registers here when it loads (settings import nothing of the domain)."""
    extra = REGISTERED_DEFAULTS.get(source, {})
    return {"topic": source, "consumer_group": f"{source}-processor"} | extra


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """The global settings; a ``ConfigurationError`` naming each refused app setting, what is wrong and the value
    refused (never a secret's), as :func:`load_source_settings` does for a source's."""
    env = os.environ if environ is None else environ
    values = {alias: env[alias] for alias in global_setting_names() if alias in env}
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigurationError(_global_settings_problems(error)) from None


def load_source_settings(source: str, environ: Mapping[str, str] | None = None) -> SourceSettings:
    env = os.environ if environ is None else environ
    values: dict[str, object] = dict(source_defaults(source))
    for field in SOURCE_FIELDS:
        name = source_setting_name(source, field)
        if name in env:
            values[field] = env[name]
    token = _VALIDATING_SOURCE.set(source)
    try:
        return SourceSettings.model_validate(values)
    except ValidationError as error:
        raise ConfigurationError(_source_settings_problems(source, error)) from None
    finally:
        _VALIDATING_SOURCE.reset(token)


MAX_SHOWN_VALUE = 80  # characters of a refused value quoted in the error


def _source_settings_problems(source: str, error: ValidationError) -> str:
    """Every refused per-source field, one per line, by the app setting it is read from (``ORDERS_FORMAT``), with
    what is wrong and the value refused (never a secret's): a message that names only ``format`` leaves an operator
    with several sources guessing which one."""
    problems = []
    for problem in error.errors(include_url=False):
        field = str(problem["loc"][0]) if problem["loc"] else ""
        name = source_setting_name(source, field) if field in SourceSettings.model_fields else f"{source.upper()}_*"
        why = str(problem["msg"]).removeprefix("Value error, ")
        if name in why:  # a validator that names the setting already says what it got
            problems.append(why)
            continue
        shown = "" if field in _SECRET_FIELDS else f" (got {_shown(problem.get('input'))})"
        problems.append(f"{name}: {why}{shown}")
    return f"invalid settings of source {source!r}:\n  " + "\n  ".join(problems)


_GLOBAL_SECRETS = frozenset(str(info.alias) for info in Settings.model_fields.values() if info.annotation is SecretStr)


def _global_settings_problems(error: ValidationError) -> str:
    """Every refused global setting, one per line, as ``_source_settings_problems`` words a source's. A problem of
    several settings together (``loc`` empty: the model's own check) names them itself and quotes no value."""
    problems = []
    for problem in error.errors(include_url=False):
        name = str(problem["loc"][0]) if problem["loc"] else ""
        why = str(problem["msg"]).removeprefix("Value error, ")
        if not name or name in why:  # a validator that names the setting already says what it got
            problems.append(why)
            continue
        shown = "" if name in _GLOBAL_SECRETS else f" (got {_shown(problem.get('input'))})"
        problems.append(f"{name}: {why}{shown}")
    return "invalid settings:\n  " + "\n  ".join(problems)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_VALUE else f"{text[: MAX_SHOWN_VALUE - 3]}..."


# What no two sources may share, and why (docs/reliability.md, "Sources kept apart").
_APART = {
    "topic": "both generators would produce to it and each processor would dead-letter the other's records",
    "consumer_group": (
        "a rebalance waits for every member, up to maxPollIntervalMs (15 minutes) for one retrying a batch, so one "
        "source's failing batch or scale-out would stop the other's consumers, and tools.reconcile could move "
        "either's offsets only with both processors stopped"
    ),
}


def check_sources_apart(settings: Mapping[str, SourceSettings]) -> None:
    """Refuse, with a ``ConfigurationError`` naming the app settings, two sources on one topic or in one consumer
    group; ``settings`` holds every registered source's. Names are compared ignoring case: an event hub's name is
    an Azure resource name, and Azure compares those ignoring case (``Orders`` is the hub ``orders``)."""
    problems = []
    for field, why in _APART.items():
        holders: dict[str, list[str]] = {}
        for source, values in settings.items():
            holders.setdefault(str(getattr(values, field)).lower(), []).append(source)
        for sources in holders.values():
            if len(sources) > 1:
                named = " and ".join(
                    f"{source_setting_name(source, field)}={getattr(settings[source], field)!r}" for source in sources
                )
                what = field.replace("_", " ")
                problems.append(f"{named}: sources {' and '.join(map(repr, sources))} would share one {what}; {why}")
    if problems:
        raise ConfigurationError("each source needs its own topic and consumer group:\n  " + "\n  ".join(problems))


def global_setting_names() -> list[str]:
    return [str(info.alias) for info in Settings.model_fields.values()]


def app_setting_names(sources: list[str]) -> list[str]:
    """Every app setting the code reads, for the given source names."""
    names = global_setting_names()
    for source in sources:
        names.extend(source_setting_name(source, field) for field in SOURCE_FIELDS)
    return names


@lru_cache(maxsize=1)
def current_settings() -> Settings:
    """Settings of this worker process, read once (app settings change only with a restart)."""
    return load_settings()
