"""The query API's decisions: which entity holds a key, which sources and keys are refused, what is shown."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from shared.state.buckets import bucket_for
from shared.state.query_api import (
    BadQuery,
    KeyQuery,
    ascii_lower,
    entity_name,
    key_from_query,
    key_from_url,
    locate,
    public_state,
    windows_answer,
)
from shared.state.registry import ENTITY_KINDS
from tests.unit.devhost.web.azure_host_model import azure_request, kestrel_decode


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


def test_the_path_form_reads_the_key_once_decoded_and_finds_its_bucket() -> None:
    url = "http://h/api/state/mobile/a%20b%3F%23.."
    assert key_from_url(url, "mobile", "a b?#..") == "a b?#.."
    assert key_from_url("http://h/api/state/sensors/s%20x/windows", "sensors", "s x") == "s x"
    where = locate("mobile", "a/b", 64)
    assert (where.entity, where.bucket, where.per_key) == ("device_activity", bucket_for("a/b", 64), "a~2Fb")
    with pytest.raises(BadQuery, match="not percent-encoded UTF-8"):
        key_from_url("http://h/api/state/mobile/%FF", "mobile", "%FF")


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://app/API/STATE/clickstream/a%3Fb", "clickstream"),
        ("https://app/Api/State/Clickstream/a%3Fb", "clickstream"),
        ("https://app/api/state/SENSORS/a%3Fb/windows", "sensors"),  # get_sensor_windows passes "sensors"
    ],
)
def test_the_key_does_not_depend_on_the_case_of_the_route(url: str, source: str) -> None:
    """Function routes match whatever the case: a differently cased URL names the same key."""
    assert key_from_url(url, source, "a?b") == key_from_url(f"https://app/api/state/{source}/a%3Fb", source, "a?b")
    assert key_from_url(url, source, "a?b") == "a?b"


# Keys the path form carries exactly through the Functions host: no "%", no "/", not "." or "..", no NUL.
PATH_KEYS = [
    "abc",
    "a b",
    "a?b#c",
    "\u043a\u043b\u044e\u0447",
    "x+y&z=1",
    " \t\n",
    "cafe\u0301",
    "!$&'()*+,;=:@",
    "a.b",
    "~7E",
    "...",
]


@pytest.mark.parametrize("key", PATH_KEYS)
def test_the_path_form_reads_its_own_key_through_the_azure_host(key: str) -> None:
    """Escapes of non-ASCII bytes and of reserved characters still work, as the host in Azure hands them over."""
    url, route = azure_request("/api/state/mobile/" + quote(key, safe=""))
    assert key_from_url(url, "mobile", route) == key


# Keys holding "%" or "/": each would be read as another key, or only by chance as itself, from the URL Azure builds.
AMBIGUOUS_KEYS = ["50%41", "a%2Fb", "%C3%A9", "%3F", "a%20b", "%", "50%", "%25", "%zz", "%%41", "a/b", "s1/windows"]


def test_a_key_holding_percent_hex_is_refused_not_read_as_another_key_in_azure() -> None:
    """Review G: key ``50%41`` is sent ``/api/state/users/50%2541``; Azure hands the function ``.../50%41``, which
    was read as ``50A``: another key's state. The path form now refuses it, naming the query form."""
    url, route = azure_request("/api/state/users/" + quote("50%41", safe=""))
    assert url.endswith("/api/state/users/50%41") and route == "50%41"  # what the host hands over
    with pytest.raises(BadQuery) as refused:
        key_from_url(url, "users", route)
    assert "GET /api/state/users?key=<key>" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.parametrize("key", AMBIGUOUS_KEYS)
def test_every_key_holding_percent_or_slash_is_refused_by_the_path_form(key: str) -> None:
    """Under Kestrel's decoding (``func start``, and Azure past its front end) a key with ``%`` or ``/`` is never
    answered from the path: the URL the function sees cannot tell it from another key."""
    url, route = azure_request("/api/state/mobile/" + quote(key, safe=""))
    with pytest.raises(BadQuery, match=r"GET /api/state/mobile\?key=<key>"):
        key_from_url(url, "mobile", route)


@pytest.mark.parametrize(
    "segment",
    ["50%41", "a%2Fb", "a%2fb", "%25", "%2E%2E", "%7E", "%5F", "%2D", "%30", "50%", "%zz", "%4"],
)
def test_a_segment_the_host_would_never_hand_over_is_refused(segment: str) -> None:
    """An escape of ``%``, ``/`` or an unreserved character, or a ``%`` that starts none, in the URL the function is
    handed means a client encoded the key twice (Kestrel decodes the rest): refused whatever the route value."""
    for route in (segment, "anything"):
        with pytest.raises(BadQuery, match="cannot be read from the URL path exactly"):
            key_from_url(f"https://app/api/state/mobile/{segment}", "mobile", route)


def test_a_key_whose_route_value_differs_from_its_url_is_refused() -> None:
    """Key ``%C3%A9`` (sent ``%25C3%25A9``) reaches the function as ``.../%C3%A9``, the URL of ``é``: the route value
    the host matched (``%C3%A9``, decoded once) tells them apart, so the two must agree."""
    assert key_from_url("https://app/api/state/mobile/%C3%A9", "mobile", "\u00e9") == "\u00e9"
    with pytest.raises(BadQuery, match=r"GET /api/state/mobile\?key=<key>"):
        key_from_url("https://app/api/state/mobile/%C3%A9", "mobile", "%C3%A9")


def test_the_windows_path_names_the_windows_query_form() -> None:
    raw_path = "/api/state/sensors/" + quote("s1%41", safe="") + "/windows"
    url, _ = azure_request(raw_path)
    with pytest.raises(BadQuery) as refused:
        key_from_url(url, "sensors", kestrel_decode(raw_path).split("/")[4])  # the route value of {key}
    assert "GET /api/state/sensors?key=<key>&view=windows" in str(refused.value)


def test_a_route_value_alone_is_taken_only_without_percent_or_slash() -> None:
    """A URL without the ``state/{source}`` segments leaves the route value, under the same rule."""
    assert key_from_url("https://app/elsewhere", "mobile", "a b") == "a b"
    for route in ("a%2Fb", "a/b", "50%41"):
        with pytest.raises(BadQuery):
            key_from_url("https://app/elsewhere", "mobile", route)


@pytest.mark.parametrize(
    ("query", "source", "expected"),
    [
        ("key=abc", "users", KeyQuery("abc", windows=False)),
        ("key=50%2541", "users", KeyQuery("50%41", windows=False)),
        ("key=a%2Fb%3F%23%25%2E%2E", "mobile", KeyQuery("a/b?#%..", windows=False)),
        ("key=a+b%2Bc", "users", KeyQuery("a b+c", windows=False)),
        ("key=%D0%BA%D0%BB%D1%8E%D1%87", "users", KeyQuery("\u043a\u043b\u044e\u0447", windows=False)),
        ("key=", "users", KeyQuery("", windows=False)),
        ("code=secret%3D%3D&KEY=x&other=1&other=2", "users", KeyQuery("x", windows=False)),
        ("key=s1%2Fwindows&view=windows", "sensors", KeyQuery("s1/windows", windows=True)),
        ("View=Windows&key=s1", "SENSORS", KeyQuery("s1", windows=True)),
    ],
)
def test_the_query_form_carries_any_key_exactly(query: str, source: str, expected: KeyQuery) -> None:
    """``GET /api/state/{source}?key=<key>``: the query reaches the function as sent, so one decoding gives the key."""
    url, _ = azure_request(f"/api/state/{source}", query)
    assert url.endswith(f"?{query}")  # the host keeps the query as sent
    assert key_from_query(url, source) == expected


@pytest.mark.parametrize(
    ("query", "source", "error"),
    [
        ("", "users", r"no key: ask GET /api/state/users\?key=<key>"),
        ("code=abc", "users", "no key"),
        ("key=a&key=b", "users", "'key' is given more than once"),
        ("key=a&view=windows&VIEW=windows", "sensors", "'view' is given more than once"),
        ("key=50%", "users", "starts no escape"),
        ("key=%FF", "users", "not percent-encoded UTF-8"),
        ("key=a&view=sessions", "clickstream", "unknown view 'sessions'"),
        ("key=a&view=windows", "users", "view=windows is for sensors only"),
        ("key=a&view=windows", "nope", "unknown source 'nope'"),
    ],
)
def test_the_query_form_refuses_what_it_cannot_read(query: str, source: str, error: str) -> None:
    with pytest.raises(BadQuery, match=error):
        key_from_query(f"https://app/api/state/{source}?{query}", source)


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


def test_an_escaped_slash_is_refused_even_when_the_route_value_agrees_with_it() -> None:
    """``%2F`` is ambiguous whatever route value a host hands over: the path form never answers a key with ``/``."""
    with pytest.raises(BadQuery, match="cannot be read from the URL path exactly"):
        key_from_url("https://app/api/state/mobile/a%2Fb", "mobile", "a/b")


def test_parameter_names_match_by_ascii_letters_only() -> None:
    """``\u212aey`` (Kelvin sign) is not ``key``: ``str.lower()`` would make it one."""
    assert ascii_lower("clic\u212aSTREAM") == "clic\u212astream"
    with pytest.raises(BadQuery, match="no key"):
        key_from_query("https://app/api/state/sensors?\u212aey=s1", "sensors")


def test_the_windows_answer_names_damage_instead_of_passing_for_no_windows() -> None:
    """A sensor whose windows cannot be read is answered with its damage named, never as a sensor with none."""
    answer = windows_answer(public_state({"count": 1, "minutes": 7}))
    assert answer["windows"] == [] and [entry.split(":")[0] for entry in answer["damaged"]] == ["windows"]
