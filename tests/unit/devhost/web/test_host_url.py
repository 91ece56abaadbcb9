"""The request the local host hands an HTTP function is the one the Functions host hands it in Azure
(checked against review G's model of the .NET sources, tests/unit/devhost/web/azure_host_model.py)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from devhost.web.host_url import BadRequestTarget, decode_path, function_url, path_uri_component, remove_dot_segments
from tests.unit.devhost.web.azure_host_model import azure_request, kestrel_decode, path_string_to_uri_component

KEYS = [
    "abc",
    "50%41",
    "%",
    "50%",
    "%%41",
    "%2F",
    "a/b",
    "a%2Fb",
    "%C3%A9",
    "%FF",
    "caf\u00e9",
    "cafe\u0301",
    "\U0001f600",
    "\u043a\u043b\u044e\u0447",
    " \t\n",
    '?#[]{}|\\^`"<>',
    "!$&'()*+,;=:@~",
    "a.b",
]
RAW_PATHS = ["/api/state/users/" + quote(key, safe="") for key in KEYS] + [
    "/api/state/users/%41%2f%2F%zz%4",  # escapes of every kind, lower-case %2f kept too
    "/api/state/users/%C3",  # a UTF-8 sequence cut short: kept as sent
    "/api/state/users/%C0%AF",  # overlong "/": kept as sent
    "/api/state/users/%ED%A0%80",  # a surrogate: kept as sent
    "/api/state/users/%F4%90%80%80",  # beyond U+10FFFF: kept as sent
    "/api/state/users/%E2%82%AC%E2%82",  # one character decoded, the rest kept
    "/%41pi/st%61te/users/%7E",
]


@pytest.mark.parametrize("raw_path", RAW_PATHS)
def test_the_path_and_url_are_built_as_the_functions_host_builds_them(raw_path: str) -> None:
    url, decoded = function_url("https", "app.azurewebsites.net", raw_path)
    assert decoded == kestrel_decode(raw_path)
    assert url == azure_request(raw_path)[0]
    assert path_uri_component(decoded) == path_string_to_uri_component(decoded)


def test_a_key_holding_percent_hex_arrives_decoded_once_too_often_as_in_azure() -> None:
    """Review G: the local host handed functions the URL as sent, so local tests never saw what Azure does."""
    url, decoded = function_url("http", "127.0.0.1:7071", "/api/state/users/50%2541")
    assert (url, decoded) == ("http://127.0.0.1:7071/api/state/users/50%41", "/api/state/users/50%41")


def test_the_query_is_handed_over_as_sent() -> None:
    target = "/api/state/users?key=50%2541+%2B%2F%zz&code=a%3D%3D&key"
    url, decoded = function_url("http", "h", target)
    assert (url, decoded) == ("http://h" + target, "/api/state/users")
    assert function_url("http", "h", "/api/state/users?")[0] == "http://h/api/state/users"


@pytest.mark.parametrize(
    ("raw_path", "path"),
    [
        ("/api/state/mobile/%2E%2E", "/api/state/"),
        ("/api/state/mobile/..", "/api/state/"),
        ("/api/state/mobile/%2e", "/api/state/mobile/"),
        ("/api/state/sensors/%2E/windows", "/api/state/sensors/windows"),
        ("/api/state/sensors/%2E%2E/windows", "/api/state/windows"),
        ("/api/state/mobile/a%2F..", "/api/state/mobile/a%2F.."),  # %2F is no separator: no dot segment
        ("/api/state/mobile/.a./..b", "/api/state/mobile/.a./..b"),
        ("/..", "/"),
        ("/a/b/../../..", "/"),
        ("/a//b/./c", "/a//b/c"),
    ],
)
def test_dot_segments_are_removed_after_decoding_as_kestrel_does(raw_path: str, path: str) -> None:
    assert decode_path(raw_path) == path


def test_remove_dot_segments_follows_rfc_3986() -> None:
    # RFC 3986 section 5.2.4's examples, on absolute paths.
    assert remove_dot_segments("/a/b/c/./../../g") == "/a/g"
    assert remove_dot_segments("/b/c/..") == "/b/"
    assert remove_dot_segments("/b/c/.") == "/b/c/"


@pytest.mark.parametrize("target", ["/api/state/users/a%00b", "/api/state/users/caf\u00e9"])
def test_a_target_kestrel_refuses_is_refused(target: str) -> None:
    with pytest.raises(BadRequestTarget):
        function_url("http", "h", target)
