"""The local host turns the Kafka bindings' authentication into librdkafka settings the way the
extension does: per-source SASL PLAIN passwords, and OAUTHBEARER with OIDC client credentials."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import confluent_kafka

from devhost.kafka.client_config import client_config, consumer_config
from devhost.runtime.host_config import HostConfig, KafkaOptions
from shared import kafka_clients
from shared.settings import load_settings
from tests.conftest import ROOT

OAUTH = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
    "KAFKA_OAUTH_CLIENT_ID": "client-id",
    "KAFKA_OAUTH_CLIENT_SECRET": "client-secret",
    "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "KAFKA_OAUTH_SCOPE": "https://evhns-test.servicebus.windows.net/.default",
}


def _kafka_bindings(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): b for f in function_app.app.get_functions()"
        " for b in json.loads(f.get_function_json())['bindings'] if b['type'] in ('kafka', 'kafkaTrigger')}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean | env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_oauthbearer_bindings_become_librdkafka_oidc_settings() -> None:
    bindings = _kafka_bindings(OAUTH | {"SENSORS_CONSUMER_GROUP": "g"})  # the worker indexes with the app settings
    config = HostConfig({**OAUTH, "KAFKA_BROKER_LIST": "127.0.0.1:9093", "SENSORS_CONSUMER_GROUP": "g"}, KafkaOptions())
    settings = client_config(bindings["process_sensors"], config)
    assert settings["security.protocol"] == "sasl_ssl"
    assert settings["sasl.mechanism"] == "OAUTHBEARER"
    assert settings["sasl.oauthbearer.method"] == "oidc"
    assert settings["sasl.oauthbearer.client.id"] == "client-id"
    assert settings["sasl.oauthbearer.client.secret"] == "client-secret"
    assert settings["sasl.oauthbearer.scope"] == OAUTH["KAFKA_OAUTH_SCOPE"]
    assert settings["sasl.oauthbearer.token.endpoint.url"] == OAUTH["KAFKA_OAUTH_TOKEN_ENDPOINT_URL"]
    assert "sasl.password" not in settings
    assert consumer_config(bindings["process_sensors"], config)["group.id"] == "g"
    # librdkafka accepts the settings: the generator's producer is built with them, its broker and token
    # endpoint pointed at a closed loopback port so nothing leaves the machine.
    loopback = {"bootstrap.servers": "127.0.0.1:1", "sasl.oauthbearer.token.endpoint.url": "https://127.0.0.1:1/token"}
    generator = kafka_clients.producer_config(load_settings(OAUTH))
    security = {key: value for key, value in settings.items() if key.startswith(("sasl.", "security."))}
    assert {key: generator.get(key) for key in security} == security  # the same credentials as the trigger's
    producer = confluent_kafka.Producer(generator | loopback)
    assert producer.flush(0) == 0


def test_plain_bindings_read_their_own_sources_password() -> None:
    bindings = _kafka_bindings({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    values = {
        "KAFKA_BROKER_LIST": "127.0.0.1:9093",
        "KAFKA_SASL_USERNAME": "$ConnectionString",
        "MOBILE_KAFKA_SASL_PASSWORD": "listen-mobile",
    }
    config = HostConfig(values, KafkaOptions())
    assert client_config(bindings["process_mobile"], config)["sasl.password"] == "listen-mobile"
    # The generator's producer has no SAS key: it sends with the app's identity (OAUTHBEARER), never a password.
    secured = values | {
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_BROKER_LIST": "evhns-test.servicebus.windows.net:9093",
        "KAFKA_PRODUCER_CREDENTIAL": "managedidentity",
    }
    generator = kafka_clients.producer_config(load_settings(secured))
    assert generator["sasl.mechanism"] == "OAUTHBEARER" and callable(generator["oauth_cb"])
    assert "sasl.password" not in generator and "listen-mobile" not in map(str, generator.values())


def test_the_consumer_keeps_librdkafkas_heartbeat_as_the_extension_does() -> None:
    """The extension sets session.timeout.ms (10 s) but not heartbeat.interval.ms: librdkafka's 3 s."""
    binding = {"brokerList": "127.0.0.1:9092", "consumerGroup": "g"}
    settings = consumer_config(binding, HostConfig({}, KafkaOptions()))
    assert "heartbeat.interval.ms" not in settings
    assert settings["session.timeout.ms"] == 10_000
