"""How the Azure lake stores connect: a connection string (Azurite, local) or the account URL with identity.

Every request's time is bounded by explicit SDK timeouts and a short retry policy, never the SDKs'
defaults (a 60 s read timeout and about a minute of backoff per request): a landing's lease is
derived from ``max_request_seconds`` (``shared.landing``), so it has to be known.

The client's timeouts bound only when the client stops waiting. A try the service received goes on
until the service's own timeout for it runs out, and that is 30 s by default and up to 10 minutes per
MiB for a write unless the request names a shorter one (its ``timeout`` query parameter, the SDK's
per-operation ``timeout=`` keyword): every request the Azure stores send names ``server_timeout``, so
what a landing's holder sent cannot take effect after its lease, as the bound below counts it.

The SDKs run the bearer-token policy inside their retry loop: a token refresh (the managed identity's endpoint, as
slow as it is) comes between a try's start and its sending. ``TryDeadline``, the last policy before the transport,
sends a try only as late as ``max_request_seconds`` counts for it, so nothing before the transport moves a try out
of the bound.

Plain http is for the emulator only: a connection string or account URL naming an http endpoint that is not on
loopback (the key, a shared-key signature or a token and the data would go out in clear) is refused.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from azure.core.exceptions import ServiceRequestError
from azure.core.pipeline.policies import HTTPPolicy

from shared.errors import ConfigurationError
from shared.hosts import LOOPBACK_HOSTS
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
    # The storage ExponentialRetry counts a retry before it computes its wait: the n-th retry (n from 1) waits
    # initial_backoff + increment_base ** n, give or take random_jitter_range; at most 2.5 s, then 3.25 s.
    "initial_backoff": 0.5,
    "increment_base": 1.5,
    "random_jitter_range": 0.5,
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


def longest_backoff(limits: dict[str, Any], retry: int) -> float:
    """The longest wait before the ``retry``-th retry (from 1): the SDK increments its count before the backoff."""
    return float(limits["initial_backoff"] + limits["increment_base"] ** retry + limits["random_jitter_range"])


def _longest_attempt(limits: dict[str, Any]) -> float:
    in_service = limits["server_timeout"] + IN_FLIGHT_SECONDS
    return float(limits["connection_timeout"] + max(limits["read_timeout"], in_service))


def latest_attempt_start(limits: dict[str, Any], attempt: int) -> float:
    """Seconds from a request's start to the latest start of its ``attempt``-th try (from 0) that
    ``max_request_seconds`` counts: every earlier try at its longest, every backoff before it too."""
    return attempt * _longest_attempt(limits) + sum(longest_backoff(limits, retry) for retry in range(1, attempt + 1))


def max_request_seconds(limits: dict[str, Any]) -> float:
    """The longest one request can take with these limits, from its start until the client gives up and until any of
    its tries can take effect: every attempt timing out, every backoff at its longest.

    A try the service received takes effect (or fails) within ``server_timeout`` of that, which is at most
    ``IN_FLIGHT_SECONDS`` after the client sent it, while the client waits ``read_timeout`` for an answer: a try lasts
    ``connection_timeout`` plus the longer of the two. This holds while the service sends a byte at least every
    ``read_timeout`` seconds and the body goes out within an attempt: each file is one Put Blob, and a landing's files
    are small (``shared.landing.guard.LANDING_MAX_BYTES``). ``TryDeadline`` holds each try to its place here.
    """
    return latest_attempt_start(limits, limits["retry_total"]) + _longest_attempt(limits)


_REQUEST_STARTED = "lake_request_started"
_ATTEMPT = "lake_attempt"


class TryDeadline(HTTPPolicy[Any, Any]):
    """The last policy before the transport: sends a try no later than ``max_request_seconds`` counts for it.

    ``count_try`` (the SDK's ``raw_request_hook``, which runs in each try before the credential policy) notes the
    request's start at its first try and numbers the tries. A try reaching the transport before the latest start the
    bound counts for it plus ``connection_timeout`` connects in what is left of that (``connection_timeout`` at
    most); one reaching it later (a slow token refresh) is not sent: ``ServiceRequestError``, which the SDK retries
    (the next try has its own, later place) and the stores report as ``LakeUnavailable``.
    """

    def __init__(self, limits: dict[str, Any]) -> None:
        super().__init__()
        self.limits = limits

    @staticmethod
    def count_try(request: Any) -> None:
        request.context.setdefault(_REQUEST_STARTED, time.monotonic())
        request.context[_ATTEMPT] = request.context.get(_ATTEMPT, -1) + 1

    def send(self, request: Any) -> Any:
        started = request.context.setdefault(_REQUEST_STARTED, time.monotonic())
        attempt = request.context.get(_ATTEMPT, 0)
        connect_by = latest_attempt_start(self.limits, attempt) + self.limits["connection_timeout"]
        elapsed = time.monotonic() - started
        if elapsed >= connect_by:
            raise ServiceRequestError(
                f"try {attempt + 1} not sent: {elapsed:.1f} s after its request started, past the {connect_by:.1f} s "
                "the request bound allows it"
            )
        request.context.options["connection_timeout"] = min(connect_by - elapsed, self.limits["connection_timeout"])
        return self.next.send(request)


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
        """SDK keyword arguments: the timeouts, a retry policy of the SDK's own class, ``TryDeadline`` last before
        the transport, the rest as given."""
        retry = retry_policy_class(**{key: self.limits[key] for key in RETRY_KEYS})
        timeouts = {key: self.limits[key] for key in ("connection_timeout", "read_timeout")}
        deadline = TryDeadline(self.limits)
        given_hook = self.options.get("raw_request_hook")

        def on_try(request: Any) -> None:
            deadline.count_try(request)
            if given_hook:
                given_hook(request)

        policies = [*self.options.get("_additional_pipeline_policies", ()), deadline]
        sdk_policies = {"retry_policy": retry, "raw_request_hook": on_try, "_additional_pipeline_policies": policies}
        return self.options | timeouts | sdk_policies

    @property
    def max_request_seconds(self) -> float:
        return max_request_seconds(self.limits)

    @property
    def server_timeout(self) -> int:
        """The server-side timeout every request of the store names (the SDK's per-operation ``timeout=``)."""
        return int(self.limits["server_timeout"])


def _in_transit_protected(url: str) -> bool:
    """https, or http to the emulator on loopback. Read as the SDKs read it: no scheme means https."""
    parts = urlsplit(url if url.lower().startswith("http") else f"https://{url}")
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    return scheme == "https" or (scheme == "http" and host in LOOPBACK_HOSTS)


def _connection_string_endpoints(connection_string: str) -> list[str]:
    """Every endpoint a connection string names, and the Blob endpoint the SDKs derive when it names none (the Data
    Lake one is derived from it): ``<DefaultEndpointsProtocol>://<AccountName>.blob.<EndpointSuffix>``, taken as
    http whenever the protocol says so (the SDKs use https when the suffix is missing; such a string is still wrong).
    Split as the SDKs split it (``parse_connection_str``)."""
    pairs = (item.split("=", 1) for item in connection_string.rstrip(";").split(";") if "=" in item)
    settings = {key.upper(): value for key, value in pairs}
    if settings.get("USEDEVELOPMENTSTORAGE") == "true":
        return []  # the emulator on 127.0.0.1
    endpoints = [value for key, value in settings.items() if key.endswith("ENDPOINT")]
    if "BLOBENDPOINT" not in settings and "ACCOUNTNAME" in settings:
        protocol = settings.get("DEFAULTENDPOINTSPROTOCOL", "https")
        suffix = settings.get("ENDPOINTSUFFIX", "core.windows.net")
        endpoints.append(f"{protocol}://{settings['ACCOUNTNAME']}.blob.{suffix}")
    return endpoints


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
        if not all(_in_transit_protected(url) for url in _connection_string_endpoints(connection_string)):
            raise ConfigurationError(
                "LAKE_CONNECTION_STRING names a plain-http endpoint off loopback: https for an Azure account, "
                "http only for the emulator on 127.0.0.1, localhost or ::1"
            )
        return LakeConnection(settings.lake_file_system, connection_string, limits=limits, options=options)
    if settings.lake_account_url:
        if not _in_transit_protected(settings.lake_account_url):
            raise ConfigurationError(
                "LAKE_ACCOUNT_URL must be https (http only for the emulator on 127.0.0.1, localhost or ::1)"
            )
        return LakeConnection(
            settings.lake_file_system, account_url=endpoint(settings.lake_account_url), limits=limits, options=options
        )
    raise ConfigurationError(
        f"LAKE_KIND={settings.lake_kind} needs LAKE_ACCOUNT_URL (identity) or LAKE_CONNECTION_STRING"
    )
