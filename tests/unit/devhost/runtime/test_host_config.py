"""host.json's Kafka options as the local host reads them: the project's own, the defaults, wrong types
refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devhost.runtime.host_config import HostConfigError, KafkaOptions, load_settings_file
from tests.conftest import ROOT


def test_the_projects_host_json_asks_for_at_least_once_on_a_bundle_that_honours_it() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    options = KafkaOptions.from_host_json(host)
    assert options.commit_on_failure is False and options.max_retries == -1
    assert options.max_batch_size == 10_000 and options.auto_commit_interval_ms == 200
    assert host["extensionBundle"]["version"] == "[4.37.0, 5.0.0)"  # Kafka extension 4.3.x: commitOnFailure


@pytest.mark.parametrize("value", ["false", "False", False])
def test_commit_on_failure_false_reads_as_false_however_it_is_written(value: object) -> None:
    options = KafkaOptions.from_host_json({"extensions": {"kafka": {"CommitOnFailure": value}}})
    assert options.commit_on_failure is False


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("commitOnFailure", "no"),
        ("commitOnFailure", 0),
        ("maxRetries", "x"),
        ("maxBatchSize", 0),
        ("maxRetries", 0.9),  # was int(0.9): 0 retries, a failed batch skipped after one round
        ("maxRetries", -1.5),
        ("maxBatchSize", 1.5),
        ("maxBatchSize", "1.5"),
        ("maxBatchSize", True),
    ],
)
def test_kafka_options_of_the_wrong_type_are_refused(name: str, value: object) -> None:
    """The extension's options are ints: a fraction fails to bind at the host's start, so it is refused, not cut."""
    with pytest.raises(HostConfigError, match=name):
        KafkaOptions.from_host_json({"extensions": {"kafka": {name: value}}})


@pytest.mark.parametrize(("value", "read"), [(-1, -1), ("-1", -1), (" 7 ", 7), (3, 3)])
def test_whole_numbers_are_read_as_written(value: object, read: int) -> None:
    assert KafkaOptions.from_host_json({"extensions": {"kafka": {"maxRetries": value}}}).max_retries == read


def test_kafka_defaults_are_the_extensions() -> None:
    options = KafkaOptions.from_host_json({})
    assert (options.commit_on_failure, options.max_retries, options.max_batch_size) == (True, 5, 64)


@pytest.mark.parametrize("value", [0, "0", -1, 0.5, 1.5, "1.5", 10.0, True, None, "ten"])
def test_a_subscriber_interval_the_extension_refuses_stops_the_host(value: object) -> None:
    """The extension's SubscriberIntervalInSeconds is an int that throws for 0 or less at startup, and a
    fractional value fails to bind to it: the local host refuses the same, rather than truncate or spin."""
    with pytest.raises(HostConfigError, match=r"subscriberIntervalInSeconds must be a whole number of seconds"):
        KafkaOptions.from_host_json({"extensions": {"kafka": {"subscriberIntervalInSeconds": value}}})


@pytest.mark.parametrize(("value", "seconds"), [(1, 1), (10, 10), ("10", 10)])
def test_a_whole_subscriber_interval_is_read(value: object, seconds: int) -> None:
    options = KafkaOptions.from_host_json({"extensions": {"kafka": {"SubscriberIntervalInSeconds": value}}})
    assert options.subscriber_interval_seconds == seconds


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"[" * 100_000, "not JSON: depth limit exceeded"),  # a RecursionError traceback before
        (b"{oops", "not JSON: unexpected character"),
        (b"[1]", "must be a JSON object, not list"),
        (b"\xff{}", "cannot be read: 'utf-8' codec can't decode"),
    ],
    ids=["nested too deep", "not JSON", "not an object", "not UTF-8"],
)
def test_a_settings_file_that_is_not_a_json_object_is_one_error_naming_it(
    tmp_path: Path, content: bytes, why: str
) -> None:
    settings = tmp_path / "local.settings.json"
    settings.write_bytes(content)
    with pytest.raises(HostConfigError) as refused:
        load_settings_file(settings)
    assert str(refused.value).startswith(f"{settings}: {why}"), refused.value
