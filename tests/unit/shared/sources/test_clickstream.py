"""Each source model on valid and invalid input, and each transform."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.source_model import record_validator
from shared.sources import SOURCES, get_source
from shared.sources.clickstream import ClickstreamEvent
from shared.sources.mobile import MobileEvent
from shared.sources.sensors import SensorReading
from tests.conftest import FIXED_NOW_MS, records_for

# A record exactly as kafka-connect-datagen's clickstream quickstart sends it with the JSON
# converter and schemas disabled: userid int, status/bytes strings, `time` string, `_time` long.
DATAGEN_CLICK = (
    b'{"ip":"122.152.45.245","userid":-1,"remote_user":"-","time":"1","_time":1,'
    b'"request":"GET /images/track.png HTTP/1.1","status":"302","bytes":"4006","referrer":"-",'
    b'"agent":"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"}'
)


def test_datagen_clickstream_record_is_accepted_as_datagen_sends_it() -> None:
    event = ClickstreamEvent.model_validate_json(DATAGEN_CLICK)
    assert (event.userid, event.status, event.bytes, event.time, event.time_ms) == (-1, "302", "4006", "1", 1)


def test_clickstream_transform_parses_request_status_and_bytes() -> None:
    row = get_source("clickstream").transform(record_validator(ClickstreamEvent).validate_json(DATAGEN_CLICK))
    assert row["request_method"] == "GET"
    assert row["request_path"] == "/images/track.png"
    assert row["http_version"] == "HTTP/1.1"
    assert (row["status"], row["status_class"], row["bytes"]) == (302, "3xx", 4006)
    assert row["user_known"] is False and row["is_bot"] is True
    assert row["remote_user"] is None and row["referrer"] is None


def test_clickstream_key_is_user_id_or_ip_for_unknown_users() -> None:
    source = get_source("clickstream")
    validate = record_validator(ClickstreamEvent).validate_json
    anonymous = source.transform(validate(DATAGEN_CLICK))
    known = source.transform(validate(DATAGEN_CLICK.replace(b'"userid":-1', b'"userid":7')))
    assert source.entity_key(anonymous) == "ip:122.152.45.245"
    assert source.entity_key(known) == "7"


@pytest.mark.parametrize(
    "change",
    [
        {"status": 302},  # Datagen sends status as a string; a number is a schema change
        {"status": "9999"},
        {"bytes": "-1"},
        {"userid": "seven"},
        {"userid": -2},
        {"_time": "soon"},
    ],
)
def test_clickstream_rejects_wrong_types(change: dict[str, object]) -> None:
    record = json.dumps(json.loads(DATAGEN_CLICK) | change)
    with pytest.raises(ValidationError):
        ClickstreamEvent.model_validate_json(record)
    with pytest.raises(ValidationError):
        record_validator(ClickstreamEvent).validate_json(record)


def test_clickstream_requires_every_datagen_field() -> None:
    record = json.loads(DATAGEN_CLICK)
    del record["request"]
    with pytest.raises(ValidationError, match="request"):
        ClickstreamEvent.model_validate_json(json.dumps(record))


MOBILE = {
    "event_id": "e-1",
    "device_id": "device-00001",
    "user_id": None,
    "session_id": "s-1",
    "event_type": "purchase",
    "screen": "checkout",
    "app_version": "5.0.0",
    "os": "iOS",
    "os_version": "18.1",
    "timestamp": "2026-11-24T10:29:59.500Z",
    "properties": {"sku": "SKU-1", "amount": "9.99"},
}


def test_mobile_event_valid_and_transformed() -> None:
    event = record_validator(MobileEvent).validate_python(MOBILE)
    row = get_source("mobile").transform(event)
    assert row["properties"] == {"sku": "SKU-1", "amount": "9.99"}
    assert get_source("mobile").entity_key(row) == "device-00001"
    assert get_source("mobile").event_time_ms(event) == FIXED_NOW_MS - 500


@pytest.mark.parametrize(
    "change",
    [
        {"event_type": "teleport"},
        {"os": "Symbian"},
        {"app_version": "five"},
        {"device_id": ""},
        {"properties": {"n": 1}},
        {"timestamp": "yesterday"},
    ],
)
def test_mobile_rejects_invalid(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        MobileEvent.model_validate(MOBILE | change)
    with pytest.raises(ValidationError):
        record_validator(MobileEvent).validate_python(MOBILE | change)


READING = {
    "sensor_id": "fra-1-power-007",
    "site": "fra-1",
    "metric": "power",
    "value": 118.25,
    "unit": "kilowatt",
    "timestamp": "2026-11-24T10:30:00Z",
}


def test_sensor_reading_valid_and_transformed() -> None:
    reading = record_validator(SensorReading).validate_python(READING)
    row = get_source("sensors").transform(reading)
    assert (row["metric"], row["value"], row["unit"]) == ("power", 118.25, "kilowatt")
    assert get_source("sensors").entity_key(row) == "fra-1-power-007"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": 20_000.0}, "outside"),
        ({"unit": "celsius"}, "measured in"),
        ({"metric": "mood"}, "metric"),
        ({"value": "NaN"}, "finite"),
    ],
)
def test_sensor_rejects_implausible_readings(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SensorReading.model_validate_json(json.dumps(READING | change))
    with pytest.raises(ValidationError, match=message):
        record_validator(SensorReading).validate_json(json.dumps(READING | change))


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_record_validator_and_model_agree_on_generated_records(name: str) -> None:
    source = get_source(name)
    for record in records_for(source, 30):
        as_model = source.model.model_validate_json(record.value or b"").model_dump()
        as_dict = record_validator(source.model).validate_json(record.value or b"")
        assert as_dict == {k: v for k, v in as_model.items() if k in as_dict}


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_generated_records_validate_and_transform_to_the_declared_columns(name: str) -> None:
    source = get_source(name)
    for record in records_for(source, 50):
        event = record_validator(source.model).validate_json(record.value or b"")
        assert set(source.transform(event)) == set(source.column_names)


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        get_source("nope")
