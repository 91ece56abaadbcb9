"""How the Azure lake stores connect: a connection string (Azurite, local) or the account URL with identity.

Every request's time is bounded by explicit SDK timeouts and a short retry policy, never the SDKs'
defaults (a 60 s read timeout and about a minute of backoff per request): a landing's lease is
derived from ``max_request_seconds`` (``shared.landing``), so it has to be known.

The client's timeouts bound only when the client stops waiting. A try the service received goes on
until the service's own timeout for it runs out, and that is 30 s by default and up to 10 minutes per
MiB for a write unless the request names a shorter one (its ``timeout`` query parameter, the SDK's
per-operation ``timeout=`` keyword): every request the Azure stores send names ``server_timeout``, so
what a landing's holder sent cannot take effect after its lease, as the bound below counts it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ConfigurationError
from shared.settings import Settings

REQUEST_LIMITS: dict[str, Any] = {
    "connection_timeout": 5,  # seconds to open a connection
    "read_timeout": 15,  # seconds without a byte from the service
    # Seconds the service may spend on one try before it gives up: sent with every request as its server-side
    # timeout (the REST "timeout" parameter; otherwise 30 s, and up to 10 minutes per MiB for a write:
    # https://learn.microsoft.com/rest/api/storageservices/setting-timeouts-for-blob-service-operations).
    # At most read_timeout (lake_connection refuses more); 10 = read_timeout - IN_FLIGHT_SECONDS, the longest with
    # which a try takes effect before the client gives up on it, so max_request_seconds stays what the client waits.
    "server_timeout": 10,
    "retry_total": 2,  # retries after the first attempt
    "initial_backoff": 1,  # seconds before the first retry (storage ExponentialRetry)
    "increment_base": 2,  # later retries wait initial_backoff + increment_base ** n
    "random_jitter_range": 1,
}
# A write no lease bounds (``write_atomic``: curated data files of up to COMPACTION_TARGET_FILE_MB, quarantine
# sidecars, tools) names a server timeout that grows with its body: ``server_timeout`` plus this many seconds a
# MiB, enough at 4 Mbit/s (Azure's own default is 10 minutes a MiB). A landing's writes (``create``, ``write_if``:
# files of at most 32 MiB) keep ``server_timeout`` alone, which the lease arithmetic below counts.
UNLEASED_SECONDS_PER_MIB = 2


def unleased_write_timeout(server_timeout: int, size: int) -> int:
    """The server timeout of a write no lease bounds, for a body of ``size`` bytes."""
    return server_timeout + UNLEASED_SECONDS_PER_MIB * -(-size // (1 << 20))


RETRY_KEYS = ("initial_backoff", "increment_base", "retry_total", "random_jitter_range")
# How long the last bytes of a request the client has sent may take to reach the service (the service's timeout
# starts when it has received the request; the client's read timeout starts once its writes returned).
IN_FLIGHT_SECONDS = 5


def max_request_seconds(limits: dict[str, Any]) -> float:
    """The longest one request can take with these limits, from its start until the client gives up and until any of
    its tries can take effect: every attempt timing out, every backoff at its longest.

    A try the service received takes effect (or fails) within ``server_timeout`` of that, which is at most
    ``IN_FLIGHT_SECONDS`` after the client sent it, while the client waits ``read_timeout`` for an answer: a try lasts
    ``connection_timeout`` plus the longer of the two. This holds while the service sends a byte at least every
    ``read_timeout`` seconds and the body goes out within an attempt: each file is one Put Blob, and a landing's files
    are small (``shared.landing.guard.LANDING_MAX_BYTES``).
    """
    attempts = limits["retry_total"] + 1
    in_service = limits["server_timeout"] + IN_FLIGHT_SECONDS
    per_attempt = limits["connection_timeout"] + max(limits["read_timeout"], in_service)
    longest_jitter = limits["random_jitter_range"]
    backoffs = sum(
        limits["initial_backoff"] + (0 if retry == 0 else limits["increment_base"] ** retry) + longest_jitter
        for retry in range(limits["retry_total"])
    )
    return float(attempts * per_attempt + backoffs)


@dataclass(frozen=True)
class LakeConnection:
    file_system: str
    connection_string: str = ""
    account_url: str = ""
    limits: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # other SDK client keyword arguments

    def credential(self) -> Any:
        """``DefaultAzureCredential``: the managed identity in Azure, a developer's login elsewhere."""
        from azure.identity import DefaultAzureCredential

        return DefaultAzureCredential()

    def client_options(self, retry_policy_class: Callable[..., Any]) -> dict[str, Any]:
        """SDK keyword arguments: the timeouts, a retry policy of the SDK's own class, the rest as given."""
        retry = retry_policy_class(**{key: self.limits[key] for key in RETRY_KEYS})
        timeouts = {key: self.limits[key] for key in ("connection_timeout", "read_timeout")}
        return self.options | timeouts | {"retry_policy": retry}

    @property
    def max_request_seconds(self) -> float:
        return max_request_seconds(self.limits)

    @property
    def server_timeout(self) -> int:
        """The server-side timeout every request of the store names (the SDK's per-operation ``timeout=``)."""
        return int(self.limits["server_timeout"])


def lake_connection(
    settings: Settings, endpoint: Callable[[str], str], client_options: dict[str, Any]
) -> LakeConnection:
    """The connection string when set, else ``endpoint(LAKE_ACCOUNT_URL)``; request limits from ``REQUEST_LIMITS``.

    ``client_options`` may override a limit (tests use ``retry_total=0``) or add SDK keyword arguments.
    """
    limits = REQUEST_LIMITS | {key: value for key, value in client_options.items() if key in REQUEST_LIMITS}
    options = {key: value for key, value in client_options.items() if key not in REQUEST_LIMITS}
    server_timeout = limits["server_timeout"]
    if not isinstance(server_timeout, int) or not 0 < server_timeout <= limits["read_timeout"]:
        raise ConfigurationError(
            f"server_timeout={server_timeout!r}: whole seconds, at least 1 and at most read_timeout "
            f"({limits['read_timeout']}), so the service gives up on a try no later than the client does"
        )
    connection_string = settings.lake_connection_string.get_secret_value()
    if connection_string:
        return LakeConnection(settings.lake_file_system, connection_string, limits=limits, options=options)
    if settings.lake_account_url:
        return LakeConnection(
            settings.lake_file_system, account_url=endpoint(settings.lake_account_url), limits=limits, options=options
        )
    raise ConfigurationError(
        f"LAKE_KIND={settings.lake_kind} needs LAKE_ACCOUNT_URL (identity) or LAKE_CONNECTION_STRING"
    )
