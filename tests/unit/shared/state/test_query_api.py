"""The query API's decisions: which entity holds a key, which sources and keys are refused, what is shown."""

from __future__ import annotations

import json

import pytest

from shared.state.buckets import bucket_for
from shared.state.query_api import BadQuery, entity_name, key_from_url, locate, public_state
from shared.state.registry import ENTITY_KINDS


@pytest.mark.parametrize(
    ("source", "key"), [("nope", "1"), ("sensors", ""), ("sensors", "\u00e9" * 70), ("users", "\ud800")]
)
def test_bad_queries_are_rejected(source: str, key: str) -> None:
    with pytest.raises(BadQuery):
        entity_name(source, key)


def test_a_source_that_keeps_no_keyed_state_is_told_apart_from_an_unknown_one() -> None:
    """``GET /api/state/orders/<key>`` answered "unknown source 'orders'" though orders is a source: it keeps no
    keyed state. Both stay 400 (docs/reliability.md); the message says which."""
    with pytest.raises(BadQuery) as refused:
        entity_name("orders", "1")
    assert str(refused.value) == (
        "source 'orders' keeps no keyed state (its batches only land); "
        "sources with state: clickstream, mobile, sensors, users"
    )
    with pytest.raises(BadQuery) as refused:
        entity_name("nope", "1")
    assert str(refused.value) == "unknown source 'nope'; sources with state: clickstream, mobile, sensors, users"


def test_query_maps_sources_to_entities_and_hides_bookkeeping() -> None:
    assert {s: entity_name(s, "ip:111.152.45.45") for s in ENTITY_KINDS} == {
        "clickstream": "user_activity",
        "mobile": "device_activity",
        "sensors": "sensor_stats",
        "users": "user_profile",
    }
    shown = public_state(
        {"count": 2, "m2": 1.0, "_offsets": {"t/0": 1}, "_applied": {}, "windows": [[0, 2, 1.0, 2.0, 3.0]]}
    )
    assert shown == {"count": 2, "windows": [{"start": 0, "count": 2, "min": 1.0, "max": 2.0, "mean": 1.5}]}
    profile = {"profile": {"username": "b"}, "latest": ["users", 1, 0, 9, 2000]}
    other = [[["users", 0, 0, 5, 1000], {"username": "a"}]]
    assert public_state(profile | {"others": other}) == {"profile": {"username": "b"}}  # a key seen in two partitions


def test_query_reads_the_key_from_the_raw_url_whatever_the_host_decoded() -> None:
    url = "http://h/api/state/mobile/a%2Fb%3F%23%25%2E%2E"
    assert key_from_url(url, "mobile", "a%2Fb?#%..") == "a/b?#%.."
    assert key_from_url("http://h/api/state/sensors/s%20x/windows", "sensors", "x") == "s x"
    where = locate("mobile", "a/b", 64)
    assert (where.entity, where.bucket, where.per_key) == ("device_activity", bucket_for("a/b", 64), "a~2Fb")
    with pytest.raises(BadQuery):
        key_from_url("http://h/api/state/mobile/%FF", "mobile", "")


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://app/API/STATE/clickstream/a%2Fb", "clickstream"),
        ("https://app/Api/State/Clickstream/a%2Fb", "clickstream"),
        ("https://app/api/state/SENSORS/a%2Fb/windows", "sensors"),  # get_sensor_windows passes "sensors"
    ],
)
def test_the_key_does_not_depend_on_the_case_of_the_route(url: str, source: str) -> None:
    """Function routes match whatever the case: a differently cased URL names the same key, never the
    route value the host left percent-encoded (``a%2Fb``, a different key)."""
    assert key_from_url(url, source, "a%2Fb") == key_from_url(f"https://app/api/state/{source}/a%2Fb", source, "a%2Fb")
    assert key_from_url(url, source, "a%2Fb") == "a/b"


@pytest.mark.parametrize(
    ("state", "view"),
    [
        ({"page_views": 3, "session": 7}, "sessions"),
        ({"page_views": 3, "closed_sessions": 7}, "sessions"),
        ({"page_views": 3, "session": [1, 2]}, "sessions"),
        ({"page_views": 3, "closed_sessions": [[1, 2, 3, None], "x"]}, "sessions"),
        ({"page_views": 3, "minutes": 7}, "windows"),
        ({"page_views": 3, "minutes": [[1]]}, "windows"),
        ({"page_views": 3, "windows": [[0, 0, 1.0, 2.0, 3.0]]}, "windows"),
    ],
)
def test_a_damaged_state_is_shown_as_stored_with_the_damage_named(state: dict[str, object], view: str) -> None:
    """A key state damaged outside this code (docs/reliability.md) gets an answer, not an exception (an
    opaque HTTP 500): its other fields as shown normally, the damaged ones as stored, named."""
    shown = public_state(state)
    assert shown["page_views"] == 3
    assert [entry.split(":")[0] for entry in shown["damaged"]] == [view]
    assert json.loads(json.dumps(shown)) == shown
