"""host.json's ``maxPollIntervalMs`` covers one full retry cycle of the processing functions.

While a batch is retried (the function's retry policy, then in place), the Kafka extension does
not poll; a consumer that has not polled for ``max.poll.interval.ms`` is put out of its group.
One cycle is the policy's attempts plus the delays between them. An attempt during a lake outage
lasts as long as the lake SDK's own retries of the first call that fails: every try timing out
(connection timeout plus read timeout) and every backoff at its longest. Both are read from the
real SDK client built as the Blob lake builds it (``shared.lake.connection.REQUEST_LIMITS`` and
the SDK's own ``ExponentialRetry``), and must equal ``max_request_seconds``, the bound the landing
lease is derived from; so raising a retry budget or a timeout without raising the interval fails
here. An Avro source's attempt first fetches the schemas it lacks: calls start
within ``REGISTRY_SECONDS_PER_BATCH``, so at most that plus one call (the Event Hubs client's,
read from the real SDK client as the app builds it, with the lake's timeouts; or the Confluent
client's overall deadline), before its lake calls. A batch the host left null values out of is first read again from
the broker, once per worker (``shared.kafka_clients.REREAD_TIMEOUT_SECONDS``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from azure.storage.blob import ContainerClient, ExponentialRetry
from confluent_kafka import Consumer

from devhost.kafka.client_config import SESSION_TIMEOUT_MS, consumer_config
from devhost.runtime.catalog import RetryPolicy
from devhost.runtime.host_config import HostConfig, HostConfigError, KafkaOptions
from shared.kafka_clients import REREAD_TIMEOUT_SECONDS
from shared.lake.blob import blob_endpoint
from shared.lake.connection import REQUEST_LIMITS, lake_connection, max_request_seconds
from shared.schema_registry import client as registry_client
from shared.schema_registry.decoder import REGISTRY_SECONDS_PER_BATCH
from shared.settings import load_settings
from tests.conftest import ROOT

# The Functions host's exponential backoff (azure-webjobs-sdk RandomizedExponentialBackoffStrategy):
# retry n waits minimum + random(0.8, 1.2) x 2^(n-2) x minimum (the first retry: minimum), capped.
HOST_RANDOMIZATION = 0.2


def _host_delay_upper_bound(policy: RetryPolicy, retry: int) -> float:
    if retry == 1:
        return policy.minimum_interval
    grown = policy.minimum_interval * (1 + (1 + HOST_RANDOMIZATION) * 2 ** (retry - 2))
    return min(policy.maximum_interval, grown)


_POLICIES = """
import dataclasses, json, function_app
from devhost.runtime.catalog import index_app
print(json.dumps([dataclasses.asdict(f.retry) if f.retry else None
                  for f in index_app(function_app.app) if f.name.startswith("process_")]))
"""


def _processing_policy() -> RetryPolicy:
    """The retry policy the local host indexes for the processing functions (in a fresh interpreter:
    the SDK indexes an app only once per process)."""
    found = subprocess.run(
        [sys.executable, "-c", _POLICIES], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    policies = {json.dumps(policy, sort_keys=True) for policy in json.loads(found.stdout.strip().splitlines()[-1])}
    assert len(policies) == 1 and "null" not in policies, policies
    policy = RetryPolicy(**json.loads(policies.pop()))
    assert policy.strategy == "exponential_backoff" and policy.max_retry_count >= 0
    return policy


def _failing_lake_call_seconds() -> float:
    """Longest a lake call that keeps failing takes: every try timing out, every backoff at its longest."""
    settings = load_settings({"LAKE_KIND": "blob", "LAKE_ACCOUNT_URL": "https://account.blob.core.windows.net"})
    lake = lake_connection(settings, blob_endpoint, {})
    client = ContainerClient(lake.account_url, lake.file_system, **lake.client_options(ExponentialRetry))
    retry: Any = next(p for p in client._pipeline._impl_policies if type(p).__name__ == "ExponentialRetry")
    config: Any = client._pipeline._transport.connection_config
    backoffs = sum(  # the SDK counts the n-th retry from 1 before it sleeps (StorageRetryPolicy.increment)
        retry.initial_backoff + retry.increment_base**count + retry.random_jitter_range
        for count in range(1, retry.total_retries + 1)
    )
    seconds = float((retry.total_retries + 1) * (config.timeout + config.read_timeout) + backoffs)
    assert seconds == max_request_seconds(REQUEST_LIMITS), "the SDK client is not built with the request limits"
    return seconds


def _registry_seconds_per_attempt(monkeypatch: pytest.MonkeyPatch) -> float:
    """Longest an attempt spends on the schema registry: its per-batch bound plus one call started at its end."""

    class Credential:
        def get_token(self, *_: Any, **__: Any) -> Any:
            raise AssertionError("nothing is called")

    import azure.identity

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", Credential)
    registry = registry_client.EventHubsRegistry("evhns.servicebus.windows.net", "group")
    generated: Any = registry._client._generated_client
    retry, config = generated._config.retry_policy, generated._client._pipeline._transport.connection_config
    assert (config.timeout, config.read_timeout, retry.total_retries) == tuple(
        REQUEST_LIMITS[key] for key in ("connection_timeout", "read_timeout", "retry_total")
    ), "the Event Hubs registry client does not have the lake's limits"
    assert retry.status_retries == 0, "a status retry sleeps for whatever Retry-After the service names"
    backoffs = sum(min(retry.backoff_max, retry.backoff_factor * 2**n) for n in range(1, retry.total_retries))
    event_hubs_call = float((retry.total_retries + 1) * (config.timeout + config.read_timeout) + backoffs)
    assert event_hubs_call == registry.max_call_seconds
    confluent_call = registry_client.ConfluentRegistry("https://registry.example.com").max_call_seconds
    return REGISTRY_SECONDS_PER_BATCH + max(event_hubs_call, confluent_call)


def _max_poll_interval_ms() -> int:
    return int(json.loads((ROOT / "host.json").read_text())["extensions"]["kafka"]["maxPollIntervalMs"])


def test_max_poll_interval_exceeds_one_full_retry_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = _processing_policy()
    retries = range(1, policy.max_retry_count + 1)
    delays = max(
        sum(policy.delay_before(n) for n in retries),  # the local host's (the larger)
        sum(_host_delay_upper_bound(policy, n) for n in retries),  # the Functions host's, at most
    )
    attempts = 1 + policy.max_retry_count
    cycle_s = attempts * (_failing_lake_call_seconds() + _registry_seconds_per_attempt(monkeypatch)) + delays
    # A batch the host left null values out of is read again from the broker once per worker (a retry reuses it:
    # functions.bindings), before its lake calls; a re-read that fails makes no lake call. At most one poll past it.
    cycle_s += REREAD_TIMEOUT_SECONDS + 1

    assert cycle_s > 300, "the extension's default interval would do: reconsider the setting"
    assert _max_poll_interval_ms() / 1000 >= cycle_s, f"one retry cycle takes up to {cycle_s:.0f} s"


def test_max_poll_interval_is_one_librdkafka_accepts() -> None:
    assert SESSION_TIMEOUT_MS <= _max_poll_interval_ms() <= 86_400_000


def test_the_local_host_uses_the_interval_and_refuses_one_librdkafka_would_reject() -> None:
    binding = {"brokerList": "127.0.0.1:1", "consumerGroup": "g", "topic": "t"}
    options = KafkaOptions.from_host_json(json.loads((ROOT / "host.json").read_text()))
    assert consumer_config(binding, HostConfig({}, options))["max.poll.interval.ms"] == _max_poll_interval_ms()
    # Built for real: librdkafka accepts the settings (nothing connects until the consumer subscribes).
    Consumer(consumer_config(binding, HostConfig({}, options))).close()

    too_short = KafkaOptions(max_poll_interval_ms=SESSION_TIMEOUT_MS - 1)
    with pytest.raises(HostConfigError, match="maxPollIntervalMs"):
        consumer_config(binding, HostConfig({}, too_short))
