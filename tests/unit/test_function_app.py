"""What the Functions host would index from function_app.app: triggers, bindings, retry policies, auth modes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from shared.sources import SOURCES
from tests.conftest import ROOT

EXAMPLE_SETTINGS: dict[str, str] = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
OAUTH = {
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
    "KAFKA_OAUTH_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    "KAFKA_OAUTH_CLIENT_SECRET": "not-a-real-secret",
    "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "KAFKA_OAUTH_SCOPE": "https://evhns-test.servicebus.windows.net/.default",
}


def _index(env: dict[str, str] | None = None, *, settings: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Index the app in a fresh interpreter, as the worker does at start-up (bindings read settings then).

    ``settings`` are the app settings the worker starts with (default: local.settings.example.json,
    as ``func start`` with a copied local.settings.json), then ``env`` on top.
    """
    script = (
        "import json, function_app\n"
        "out = {}\n"
        "for f in function_app.app.get_functions():\n"
        "    out[f.get_function_name()] = {'json': json.loads(f.get_function_json()),\n"
        "        'settings': [s.get_dict_repr() for s in f._settings]}\n"
        "print(json.dumps(out))\n"
    )
    clean = {k: v for k, v in os.environ.items() if k != "KAFKA_SECURITY_PROTOCOL"}
    app_settings = EXAMPLE_SETTINGS if settings is None else settings
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=clean | app_settings | (env or {}),
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def indexed() -> dict[str, dict[str, Any]]:
    return _index()


def _binding(function: dict[str, Any], kind: str) -> dict[str, Any]:
    (binding,) = [b for b in function["json"]["bindings"] if b["type"] == kind]
    return dict(binding)


def test_one_kafka_trigger_per_source_with_cardinality_many(indexed: dict[str, dict[str, Any]]) -> None:
    triggers = {name: _binding(f, "kafkaTrigger") for name, f in indexed.items() if name.startswith("process_")}
    assert sorted(triggers) == sorted(f"process_{s}" for s in SOURCES)
    for source in SOURCES:
        trigger = triggers[f"process_{source}"]
        upper = source.upper()
        assert trigger["cardinality"] == "MANY"
        assert trigger["dataType"] == "BINARY"  # raw bytes, so bad UTF-8 reaches the dead-letter area intact
        assert trigger["topic"] == f"%{upper}_TOPIC%"
        assert trigger["consumerGroup"] == f"%{upper}_CONSUMER_GROUP%"
        assert trigger["brokerList"] == "%KAFKA_BROKER_LIST%"
        assert trigger["protocol"] == "NOTSET" and trigger["authenticationMode"] == "NOTSET"


def test_processing_functions_have_a_retry_policy(indexed: dict[str, dict[str, Any]]) -> None:
    for source in SOURCES:
        (policy,) = [s for s in indexed[f"process_{source}"]["settings"] if s["setting_name"] == "retry_policy"]
        assert policy["strategy"] == "exponential_backoff"
        assert int(policy["max_retry_count"]) >= 3


def test_one_timer_per_source_producing_itself_not_through_the_output_binding(
    indexed: dict[str, dict[str, Any]],
) -> None:
    for source in SOURCES:
        function = indexed[f"generate_{source}"]
        upper = source.upper()
        assert _binding(function, "timerTrigger")["schedule"] == f"%{upper}_GENERATOR_SCHEDULE%"
        # the output binding returns before delivery (shared.kafka_clients): a lost tick would count as sent
        assert not [b for b in function["json"]["bindings"] if b["type"] == "kafka"]


def test_binding_values_are_app_setting_names_never_literals(indexed: dict[str, dict[str, Any]]) -> None:
    for function in indexed.values():
        for binding in function["json"]["bindings"]:
            for key in ("topic", "brokerList", "consumerGroup", "username", "password", "schedule"):
                if key in binding:
                    assert binding[key].startswith("%") and binding[key].endswith("%"), (key, binding[key])


def test_an_unset_per_source_setting_is_written_as_its_default_except_secrets() -> None:
    """``func start`` resolves %NAME% only from app settings: a source without settings still indexes
    to bindings the host can run (a Datagen config dropped into sources/ needs no settings edit)."""
    without_sources = {k: v for k, v in EXAMPLE_SETTINGS.items() if not k.startswith(("ORDERS_", "SENSORS_"))}
    indexed = _index(
        {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"}, settings=without_sources
    )
    trigger = _binding(indexed["process_orders"], "kafkaTrigger")
    assert (trigger["topic"], trigger["consumerGroup"]) == ("orders", "orders-processor")
    assert trigger["password"] == "%ORDERS_KAFKA_SASL_PASSWORD%", "a secret is never written as a value"
    assert _binding(indexed["generate_sensors"], "timerTrigger")["schedule"] == "*/10 * * * * *"
    assert _binding(indexed["compact_sensors"], "timerTrigger")["schedule"] == "0 */15 * * * *"
    assert _binding(indexed["process_mobile"], "kafkaTrigger")["topic"] == "%MOBILE_TOPIC%", "set: named"


def test_event_hubs_mode_uses_sasl_ssl_plain_with_a_password_per_source() -> None:
    indexed = _index({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"})
    passwords = set()
    for name, function in indexed.items():
        for binding in function["json"]["bindings"]:
            if binding["type"] in ("kafka", "kafkaTrigger"):
                assert (binding["protocol"], binding["authenticationMode"]) == ("SASLSSL", "PLAIN"), name
                source = name.split("_", 1)[1].upper()
                password = f"%{source}_KAFKA_SASL_PASSWORD%"  # the generators' producers read PRODUCER_ ones
                assert (binding["username"], binding["password"]) == ("%KAFKA_SASL_USERNAME%", password), name
                passwords.add(binding["password"])
    assert len(passwords) == len(SOURCES), "one credential per source's trigger"


def test_oauthbearer_mode_produces_oidc_client_credentials_bindings() -> None:
    """The binding JSON the host gets in OAUTHBEARER mode: every credential is a %setting%, no password."""
    indexed = _index(OAUTH)
    kafka = [b for f in indexed.values() for b in f["json"]["bindings"] if b["type"] in ("kafka", "kafkaTrigger")]
    assert len(kafka) == len(SOURCES)  # the triggers: generators produce through shared.kafka_clients
    for binding in kafka:
        assert binding["protocol"] == "SASLSSL"
        assert binding["authenticationMode"] == "OAUTHBEARER"  # the extension's BrokerAuthenticationMode.OAuthBearer
        assert binding["oAuthBearerMethod"] == "OIDC"
        assert binding["oAuthBearerClientId"] == "%KAFKA_OAUTH_CLIENT_ID%"
        assert binding["oAuthBearerClientSecret"] == "%KAFKA_OAUTH_CLIENT_SECRET%"
        assert binding["oAuthBearerTokenEndpointUrl"] == "%KAFKA_OAUTH_TOKEN_ENDPOINT_URL%"
        assert binding["oAuthBearerScope"] == "%KAFKA_OAUTH_SCOPE%"
        assert "password" not in binding and "username" not in binding
        assert "not-a-real-secret" not in json.dumps(binding)


def test_oauthbearer_without_its_settings_fails_at_indexing() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _index({**OAUTH, "KAFKA_OAUTH_SCOPE": ""})
    assert "KAFKA_OAUTH_SCOPE" in failure.value.stderr


def test_lag_threshold_is_read_per_source_at_indexing(indexed: dict[str, dict[str, Any]]) -> None:
    assert {_binding(indexed[f"process_{s}"], "kafkaTrigger")["lagThreshold"] for s in SOURCES} == {1000}
    tuned = _index({"SENSORS_LAG_THRESHOLD": "250"})
    assert _binding(tuned["process_sensors"], "kafkaTrigger")["lagThreshold"] == 250
    assert _binding(tuned["process_mobile"], "kafkaTrigger")["lagThreshold"] == 1000


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLICKSTREAM_TOPIC": "orders"}, ["CLICKSTREAM_TOPIC='orders'", "ORDERS_TOPIC='orders'"]),
        ({"USERS_CONSUMER_GROUP": "mobile-processor"}, ["USERS_CONSUMER_GROUP=", "MOBILE_CONSUMER_GROUP="]),
    ],
    ids=["topic", "consumer group"],
)
def test_two_sources_on_one_topic_or_in_one_group_fail_at_indexing_naming_both_settings(
    env: dict[str, str], named: list[str]
) -> None:
    """`CLICKSTREAM_TOPIC=orders` indexed: both generators produced to `orders`, and each processor dead-lettered
    the other source's records."""
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _index(env)
    assert "ConfigurationError" in failure.value.stderr
    for text in named:
        assert text in failure.value.stderr


def test_a_bad_source_setting_fails_at_indexing_naming_the_app_setting() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _index({"MOBILE_LAG_THRESHOLD": "lots"})
    assert "MOBILE_LAG_THRESHOLD: Input should be a valid integer" in failure.value.stderr
