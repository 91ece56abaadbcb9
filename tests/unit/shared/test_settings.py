"""One settings model: the example file agrees with it, defaults work, bad values fail by name, secrets
never print."""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest

from shared.errors import ConfigurationError
from shared.layout import NAME_BYTES, longest_file_name_bytes
from shared.settings import (
    PLATFORM_SETTINGS,
    SourceSettings,
    app_setting_names,
    check_sources_apart,
    load_settings,
    load_source_settings,
    source_defaults,
    source_setting_name,
    telemetry_identity,
)
from shared.sources import CONFIG_SOURCES, SOURCES
from tests.conftest import ROOT

IKEY = "0a1b2c3d-0000-4000-8000-00000000abcd"

EXAMPLE = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
OAUTH = {
    "KAFKA_OAUTH_CLIENT_ID": "00000000-0000-0000-0000-000000000001",
    "KAFKA_OAUTH_CLIENT_SECRET": "not-a-real-secret",
    "KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "https://login.microsoftonline.com/tenant/oauth2/v2.0/token",
    "KAFKA_OAUTH_SCOPE": "https://evhns-test.servicebus.windows.net/.default",
}


def _listed_config_sources() -> list[str]:
    """Datagen config sources the example lists (a dropped-in config needs no entry: its file holds the defaults)."""
    return [s.name for s in CONFIG_SOURCES if source_setting_name(s.name, "topic") in EXAMPLE]


def test_example_settings_document_exactly_what_the_code_reads() -> None:
    hand_written = [name for name in SOURCES if name not in {s.name for s in CONFIG_SOURCES}]
    code = set(app_setting_names([*hand_written, *_listed_config_sources()]))
    example = set(EXAMPLE) - PLATFORM_SETTINGS
    assert sorted(code - example) == [], "settings the code reads but the example lacks"
    assert sorted(example - code) == [], "settings in the example that the code never reads"


def test_the_shipped_datagen_config_is_in_the_example_with_its_configs_defaults() -> None:
    assert "orders" in _listed_config_sources()
    for name in _listed_config_sources():
        from_example = load_source_settings(name, EXAMPLE)
        from_config = load_source_settings(name, {})
        assert from_example == from_config, f"local.settings.example.json disagrees with sources/{name}.json"


def test_example_values_are_valid() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.kafka_broker_list == "127.0.0.1:9092"
    for name in SOURCES:
        assert load_source_settings(name, EXAMPLE).topic == source_defaults(name)["topic"]


def test_defaults_work_with_no_settings_at_all() -> None:
    assert load_settings({}).lake_kind == "local"
    clickstream = load_source_settings("clickstream", {})
    assert (clickstream.topic, clickstream.consumer_group, clickstream.format) == (
        "clickstream",
        "clickstream-processor",
        "parquet",
    )


def test_source_settings_read_their_prefixed_names() -> None:
    env = {"MOBILE_FORMAT": "avro", "MOBILE_GENERATOR_SEED": "42", "MOBILE_GENERATOR_ENABLED": "false"}
    mobile = load_source_settings("mobile", env)
    assert (mobile.format, mobile.generator_seed, mobile.generator_enabled) == ("avro", 42, False)


def test_each_kafka_security_mode_with_what_it_needs_is_valid() -> None:
    assert load_settings({}).kafka_security_protocol == "PLAINTEXT"  # local: no user, no credentials
    assert load_settings({"KAFKA_SASL_USERNAME": "", "KAFKA_SASL_MECHANISM": "PLAIN"}).kafka_sasl_username == ""
    plain = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "$ConnectionString"}
    assert load_settings(plain).kafka_sasl_username == "$ConnectionString"
    oauth = {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"} | OAUTH
    assert load_settings(oauth).kafka_oauth_client_id == OAUTH["KAFKA_OAUTH_CLIENT_ID"]  # needs no user


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAKE_KIND": "s3"}, "LAKE_KIND"),
        ({"MAX_RECORD_BYTES": "0"}, "MAX_RECORD_BYTES"),
        ({"KAFKA_BROKER_LIST": "  "}, "KAFKA_BROKER_LIST"),
        ({"KAFKA_SASL_MECHANISM": "SCRAM"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"}, "KAFKA_OAUTH_CLIENT_ID"),
        # SASL PLAIN without its user: librdkafka would fail on every connection instead
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "KAFKA_SASL_USERNAME"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": " "},
            "USERNAME",
        ),
        # OAUTHBEARER over PLAINTEXT: the bindings and producers would connect with no authentication at all
        ({"KAFKA_SASL_MECHANISM": "OAUTHBEARER"} | OAUTH, "KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        # librdkafka POSTs the client id and secret to the token endpoint: over http they travel in clear text
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "OAUTHBEARER"}
            | OAUTH
            | {"KAFKA_OAUTH_TOKEN_ENDPOINT_URL": "http://login.microsoftonline.com/tenant/oauth2/v2.0/token"},
            "KAFKA_OAUTH_TOKEN_ENDPOINT_URL must be an https",
        ),
        ({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Key"}, "APPLICATIONINSIGHTS_AUTHENTICATION"),
        ({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId"}, "APPLICATIONINSIGHTS_AUTHENTICATION"),
        # Event Hubs over PLAINTEXT (the protocol's default): no TLS, and every connection would time out
        ({"KAFKA_BROKER_LIST": "evhns-prod.servicebus.windows.net:9093"}, "takes KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        ({"KAFKA_BROKER_LIST": "localhost:9092, EVHNS.ServiceBus.Windows.net:9093"}, "evhns.servicebus.windows.net"),
        # any other broker over PLAINTEXT: records and offsets in clear, no authentication (TLS only off this machine)
        ({"KAFKA_BROKER_LIST": "kafka.internal:9092"}, "accepted only for a broker on this machine.*kafka.internal"),
        ({"KAFKA_BROKER_LIST": "127.0.0.1:9092,10.0.0.7:9092"}, "names 10.0.0.7: use SASL_SSL"),
        ({"KAFKA_BROKER_LIST": "[2001:db8::1]:9092"}, "names \\[2001:db8::1\\]"),
        # an infinite or huge lease overflowed the ledger's deadline, or made a partition wait for ever
        ({"LANDING_LEASE_SECONDS": "inf"}, "LANDING_LEASE_SECONDS: Input should be less than or equal to 3600"),
        ({"LANDING_LEASE_SECONDS": "1e20"}, "LANDING_LEASE_SECONDS"),
        ({"LANDING_LEASE_SECONDS": "nan"}, "LANDING_LEASE_SECONDS"),
        # the exporter's own parser raised a bare ValueError from function_app.py, naming nothing
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "x"}, "APPLICATIONINSIGHTS_CONNECTION_STRING must be key=value"),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={IKEY};"}, "no empty pair"),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=abc"}, "lowercase UUID"),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={IKEY.upper()}"}, "lowercase UUID"),
        ({"APPLICATIONINSIGHTS_CONNECTION_STRING": f"InstrumentationKey={IKEY};Authorization=AAD"}, "ikey"),
        # a container name Azure Storage refuses failed every batch, retried for ever, naming no setting
        ({"LAKE_KIND": "blob", "LAKE_FILE_SYSTEM": ""}, "LAKE_FILE_SYSTEM must be a container name"),
        ({"LAKE_KIND": "adls", "LAKE_FILE_SYSTEM": "Lake"}, "LAKE_FILE_SYSTEM must be a container name"),
        ({"LAKE_KIND": "adls", "LAKE_FILE_SYSTEM": "la"}, "LAKE_FILE_SYSTEM must be a container name"),
        ({"LAKE_KIND": "blob", "LAKE_FILE_SYSTEM": "a--b"}, "LAKE_FILE_SYSTEM must be a container name"),
        ({"LAKE_KIND": "blob", "LAKE_FILE_SYSTEM": "lake-"}, "LAKE_FILE_SYSTEM must be a container name"),
    ],
)
def test_bad_settings_fail_with_the_setting_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_settings(env)


def test_edge_values_that_mean_unset_or_are_valid_are_taken() -> None:
    assert load_settings({"LAKE_LOCAL_ROOT": ""}).lake_local_root == Path(".lake")  # not the working directory
    assert load_settings({"LAKE_LOCAL_ROOT": " "}).lake_local_root == Path(".lake")
    blank = load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": "  "})
    assert blank.applicationinsights_connection_string.get_secret_value() == ""  # not exported, no traceback
    azure = f" InstrumentationKey={IKEY};IngestionEndpoint=https://westeurope-5.in.applicationinsights.azure.com/ "
    assert load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": azure}).applicationinsights_connection_string
    for name in ("lake", "lake-1", "a" * 63, "0ab"):
        assert load_settings({"LAKE_KIND": "blob", "LAKE_FILE_SYSTEM": name}).lake_file_system == name
    assert load_settings({"LAKE_FILE_SYSTEM": ""}).lake_kind == "local"  # the local lake names no container
    assert load_settings({"LANDING_LEASE_SECONDS": "3600"}).landing_lease_seconds == 3600
    for local in ("127.0.0.1:9092", "localhost:19092", "[::1]:9092", "127.0.0.2:9092,LOCALHOST:9093"):
        assert load_settings({"KAFKA_BROKER_LIST": local}).kafka_security_protocol == "PLAINTEXT"


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("STATE_BUCKETS", "0", "greater than or equal to 1"),
        ("MAX_RECORD_BYTES", "-5", "greater than 0"),
        ("MAX_RECORD_BYTES", "abc", "valid integer"),
        ("LAKE_KIND", "s3", "'local', 'blob' or 'adls'"),
        ("COMPACTION_OPEN_HOURS", "maybe", "valid boolean"),
    ],
)
def test_a_bad_global_setting_fails_naming_the_app_setting_what_is_wrong_and_the_value(
    name: str, value: str, why: str
) -> None:
    """It was pydantic's own ValidationError, a traceback on every tool and the local host, with its URL lines."""
    with pytest.raises(ConfigurationError) as raised:
        load_settings({name: value})
    lines = str(raised.value).splitlines()
    assert lines == ["invalid settings:", f"  {lines[1].strip()}"]
    assert lines[1].strip().startswith(f"{name}: ") and why in lines[1] and lines[1].endswith(f"(got {value!r})")
    assert raised.value.__cause__ is None and "pydantic.dev" not in str(raised.value)


def test_every_bad_global_setting_is_listed_at_once_and_a_long_value_shortened() -> None:
    env = {"STATE_BUCKETS": "0", "MAX_RECORD_BYTES": "-5", "LAKE_KIND": "s" * 10_000}
    with pytest.raises(ConfigurationError) as raised:
        load_settings(env)
    lines = str(raised.value).splitlines()
    assert sorted(line.split()[0].rstrip(":") for line in lines[1:]) == sorted(env)
    assert len(str(raised.value)) < 500 and "sss..." in str(raised.value)


def test_a_refused_secret_setting_is_named_but_never_quoted() -> None:
    for name in ("KAFKA_OAUTH_CLIENT_SECRET", "LAKE_CONNECTION_STRING", "SCHEMA_REGISTRY_PASSWORD"):
        with pytest.raises(ConfigurationError) as raised:
            load_settings({name: ["top", "secret"]})  # not a string: refused
        assert name in str(raised.value) and "secret" not in str(raised.value).replace(name, "").lower()
    oauth = {"KAFKA_SASL_MECHANISM": "OAUTHBEARER", "KAFKA_OAUTH_CLIENT_SECRET": "top-secret"}
    with pytest.raises(ConfigurationError) as raised:  # the model's own check: it names the settings, quotes none
        load_settings(oauth)
    assert "top-secret" not in str(raised.value) and "KAFKA_SECURITY_PROTOCOL=SASL_SSL" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("ORDERS_GENERATOR_EVENTS_PER_TICK", "abc", "valid integer"),
        ("ORDERS_GENERATOR_EVENTS_PER_TICK", "-5", "greater than or equal to 0"),
        ("ORDERS_GENERATOR_EVENTS_PER_TICK", "100001", "less than or equal to 100000"),
        ("ORDERS_GENERATOR_ITERATIONS", "", "valid integer"),
        ("ORDERS_GENERATOR_ENABLED", "maybe", "valid boolean"),
        ("ORDERS_FORMAT", "csv", "'parquet', 'avro' or 'jsonl'"),
        ("ORDERS_LAG_THRESHOLD", "0", "greater than or equal to 1"),
        ("ORDERS_LAG_THRESHOLD", str(2**63), "less than 9223372036854775808"),
        ("SENSORS_STATE_ENABLED", "2", "valid boolean"),
    ],
)
def test_a_bad_source_setting_fails_naming_the_app_setting_what_is_wrong_and_the_value(
    name: str, value: str, why: str
) -> None:
    """Only topic, group and schedule errors named the app setting: the rest said ``generator_events_per_tick``,
    with no source, and with several sources the operator could not tell which one was wrong."""
    source = name.split("_", 1)[0].lower()
    with pytest.raises(ConfigurationError) as raised:
        load_source_settings(source, {name: value})
    (line,) = [line.strip() for line in str(raised.value).splitlines() if name in line]
    assert line.startswith(f"{name}: ") and why in line and f"(got {value!r})" in line


def test_every_bad_source_setting_is_listed_at_once() -> None:
    env = {"SENSORS_FORMAT": "csv", "SENSORS_LAG_THRESHOLD": "0", "SENSORS_TOPIC": "a b", "SENSORS_GENERATOR_SEED": "x"}
    with pytest.raises(ConfigurationError) as raised:
        load_source_settings("sensors", env)
    lines = str(raised.value).splitlines()
    assert lines[0] == "invalid settings of source 'sensors':"
    assert sorted(line.split()[0].rstrip(":") for line in lines[1:]) == sorted(env)


def test_a_refused_value_is_quoted_shortened() -> None:
    with pytest.raises(ConfigurationError) as raised:
        load_source_settings("sensors", {"SENSORS_FORMAT": "x" * 10_000})
    assert len(str(raised.value)) < 400 and "xxx..." in str(raised.value)


@pytest.mark.parametrize("seed", [2**63, 2**64, -(2**63) - 1])
def test_a_seed_the_progress_file_cannot_hold_fails_naming_the_setting(seed: int) -> None:
    """The seed is saved in the generator's progress before every tick, as JSON by orjson, which holds 64 bits:
    an unbounded one failed every tick, forever, at ``orjson.dumps``."""
    with pytest.raises(ConfigurationError, match="SENSORS_GENERATOR_SEED: Input should be"):
        load_source_settings("sensors", {"SENSORS_GENERATOR_SEED": str(seed)})


@pytest.mark.parametrize("seed", [2**63 - 1, -(2**63), 0])
def test_every_signed_64_bit_seed_is_taken_and_fits_the_progress_file(seed: int) -> None:
    settings = load_source_settings("sensors", {"SENSORS_GENERATOR_SEED": str(seed)})
    assert orjson.loads(orjson.dumps({"seed": settings.generator_seed})) == {"seed": seed}


@pytest.mark.parametrize(
    ("name", "value", "why"),
    [
        ("ORDERS_GENERATOR_SCHEDULE", "0 0 0 * * 7", "day of week: '7' is outside 0-6"),
        ("ORDERS_GENERATOR_SCHEDULE", "0 0 0 1-32 * *", "day of month: '1-32' is outside 1-31"),
        ("ORDERS_COMPACTION_SCHEDULE", "99 * * * * *", "second: '99' is outside 0-59"),
        ("CLICKSTREAM_COMPACTION_SCHEDULE", "0 0 24 * * *", "hour: '24' is outside 0-23"),
        ("CLICKSTREAM_GENERATOR_SCHEDULE", "0 0 0 0 * *", "day of month: '0' is outside 1-31"),
        ("USERS_GENERATOR_SCHEDULE", "0 0 0 1 13 *", "month: '13' is outside 1-12"),
        ("USERS_GENERATOR_SCHEDULE", "0 0 0 * * 5-8", "day of week: '5-8' is outside 0-6"),
        ("ORDERS_COMPACTION_SCHEDULE", "0 0 0 30 2 *", "schedule never fires"),  # raw hours never curated
        ("ORDERS_GENERATOR_SCHEDULE", "0 0 0 31 4 *", "schedule never fires"),
    ],
)
def test_a_schedule_outside_ncrontabs_ranges_is_refused_naming_the_setting(name: str, value: str, why: str) -> None:
    """The Functions host refuses these, and with them every function of the app, after a deploy that succeeded;
    one that never fires (the 30th of February) would stop its function silently."""
    source = name.split("_", 1)[0].lower()
    with pytest.raises(ConfigurationError, match=f"\n  {name}: '{re.escape(value)}': {re.escape(why)}"):
        load_source_settings(source, {name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDERS_TOPIC", ""),
        ("ORDERS_TOPIC", "   "),
        ("ORDERS_TOPIC", "orders events"),
        ("ORDERS_TOPIC", "orders/eu"),
        ("ORDERS_TOPIC", "."),
        ("ORDERS_TOPIC", ".."),
        ("ORDERS_TOPIC", ".orders"),  # Kafka takes it, an event hub does not, and its raw files would be dot-files
        ("ORDERS_TOPIC", "x" * 250),
        ("ORDERS_CONSUMER_GROUP", ""),
        ("ORDERS_CONSUMER_GROUP", " "),
        ("ORDERS_GENERATOR_SCHEDULE", "every ten seconds"),
        ("ORDERS_GENERATOR_SCHEDULE", "*/10 * * * *"),  # five fields: the seconds are missing
        ("ORDERS_GENERATOR_SCHEDULE", "00:00:10"),  # a TimeSpan, not NCRONTAB
        ("ORDERS_COMPACTION_SCHEDULE", ""),
        ("ORDERS_COMPACTION_SCHEDULE", "0 */15 * * * * *"),
        ("CLICKSTREAM_TOPIC", "clicks?"),
    ],
)
def test_a_source_setting_that_names_no_topic_group_or_schedule_fails_with_its_name(name: str, value: str) -> None:
    source = name.split("_", 1)[0].lower()
    with pytest.raises(ConfigurationError, match=f"\n  {name} must "):
        load_source_settings(source, {name: value})


def test_a_topic_starting_with_a_dot_is_refused_in_one_line_naming_the_setting() -> None:
    """Its raw files would be named ``.orders+0+i0+...``: compaction read no dot-file, so they were never curated,
    never in the lag, and deleted by the lifecycle rule (a review proved the loss). An event hub's name cannot start
    with a dot either."""
    with pytest.raises(ConfigurationError) as raised:
        load_source_settings("orders", {"ORDERS_TOPIC": ".orders"})
    (line,) = str(raised.value).splitlines()[1:]
    assert line.strip() == (
        "ORDERS_TOPIC must not start with '.' (an event hub's name cannot, and the raw files landed for it would"
        " be hidden files); got '.orders'"
    )


def test_a_topic_too_long_for_the_lake_to_name_its_files_is_refused_naming_the_limit() -> None:
    """Review 15: Kafka takes 249 characters, but a file landed for a topic is named by it and ~100 bytes more; a
    topic of 190 landed raw files and then failed every batch with an entity's refusal (its dead-letter name too
    long), for ever: one record stopped the stream."""
    with pytest.raises(ConfigurationError) as raised:
        load_source_settings("orders", {"ORDERS_TOPIC": "x" * 153})
    (line,) = str(raised.value).splitlines()[1:]
    assert "ORDERS_TOPIC is too long for the lake" in line and "at most 152 characters; got 153" in line
    assert longest_file_name_bytes("x" * 152) == NAME_BYTES


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ORDERS_TOPIC", "Orders_v2-eu.raw"),
        ("ORDERS_TOPIC", "orders."),  # a dot anywhere but first
        ("ORDERS_TOPIC", "x" * 152),  # the longest whose files the lake can name
        ("ORDERS_CONSUMER_GROUP", "$Default"),  # Event Hubs' default consumer group
        ("ORDERS_GENERATOR_SCHEDULE", "0 */5 9-17 * * MON-FRI"),
        ("ORDERS_GENERATOR_SCHEDULE", "0,30 * * 1 Jan,Jul *"),
        ("ORDERS_COMPACTION_SCHEDULE", "0 0 1-23/2 * * *"),
    ],
)
def test_topics_groups_and_schedules_kafka_and_the_host_take_are_valid(name: str, value: str) -> None:
    settings = load_source_settings("orders", {name: value})
    assert getattr(settings, name.removeprefix("ORDERS_").lower()) == value


@pytest.mark.parametrize(
    ("value", "client_id"),
    [("Authorization=AAD", None), ("ClientId=abc-123;Authorization=AAD", "abc-123"), (" authorization=aad ", None)],
)
def test_telemetry_identity_reads_the_documented_authentication_string(value: str, client_id: str | None) -> None:
    assert telemetry_identity(value) == client_id
    assert load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": value}).applicationinsights_authentication_string


def test_secrets_do_not_print() -> None:
    settings = load_settings({"KAFKA_OAUTH_CLIENT_SECRET": "topsecret"})
    assert "topsecret" not in repr(settings) and "topsecret" not in str(settings.model_dump())
    source = load_source_settings(
        "mobile", {"MOBILE_KAFKA_SASL_PASSWORD": "Endpoint=sb://x/;SharedAccessKey=topsecret"}
    )
    assert "topsecret" not in repr(source) and "topsecret" not in str(source.model_dump())


def _all_sources(env: dict[str, str]) -> dict[str, SourceSettings]:
    return {name: load_source_settings(name, env) for name in SOURCES}


def test_sources_with_their_default_topics_and_groups_are_apart() -> None:
    check_sources_apart(_all_sources({}))
    check_sources_apart(_all_sources(EXAMPLE))


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"CLICKSTREAM_TOPIC": "orders"}, ["CLICKSTREAM_TOPIC='orders'", "ORDERS_TOPIC='orders'", "share one topic"]),
        ({"MOBILE_TOPIC": "hub", "SENSORS_TOPIC": "hub"}, ["MOBILE_TOPIC='hub' and SENSORS_TOPIC='hub'"]),
        ({"USERS_TOPIC": "Orders"}, ["USERS_TOPIC='Orders'", "ORDERS_TOPIC='orders'"]),  # one event hub in Azure
        (
            {"MOBILE_CONSUMER_GROUP": "sensors-processor"},
            ["MOBILE_CONSUMER_GROUP='sensors-processor'", "SENSORS_CONSUMER_GROUP", "share one consumer group"],
        ),
    ],
    ids=["a topic", "a topic neither defaults to", "a topic differing in case", "a consumer group"],
)
def test_two_sources_on_one_topic_or_in_one_consumer_group_fail_naming_their_settings(
    env: dict[str, str], named: list[str]
) -> None:
    """Each generator produced to the shared topic and each processor dead-lettered the other's records; a shared
    group let one source's rebalance, waiting up to maxPollIntervalMs for a member retrying a batch, stop the other."""
    with pytest.raises(ConfigurationError) as raised:
        check_sources_apart(_all_sources(env))
    for text in named:
        assert text in str(raised.value)
