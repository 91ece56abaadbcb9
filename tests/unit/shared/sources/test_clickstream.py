"""The clickstream source: Datagen's records accepted as sent, wrong types refused, the transform and key."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.source_model import record_validator
from shared.sources import get_source
from shared.sources.clickstream import ClickstreamEvent

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
