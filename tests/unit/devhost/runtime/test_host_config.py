"""host.json's Kafka options as the local host reads them: the project's own, the defaults, wrong types
refused."""

from __future__ import annotations

import json

import pytest

from devhost.runtime.host_config import HostConfigError, KafkaOptions
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
    ("name", "value"), [("commitOnFailure", "no"), ("commitOnFailure", 0), ("maxRetries", "x"), ("maxBatchSize", 0)]
)
def test_kafka_options_of_the_wrong_type_are_refused(name: str, value: object) -> None:
    with pytest.raises(HostConfigError, match=name):
        KafkaOptions.from_host_json({"extensions": {"kafka": {name: value}}})


def test_kafka_defaults_are_the_extensions() -> None:
    options = KafkaOptions.from_host_json({})
    assert (options.commit_on_failure, options.max_retries, options.max_batch_size) == (True, 5, 64)
