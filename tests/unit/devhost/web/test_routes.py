"""HTTP trigger route templates as matchers."""

from __future__ import annotations

from devhost.runtime.catalog import IndexedFunction
from devhost.web.routes import compile_route, http_routes


def test_route_templates() -> None:
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1").groupdict() == {  # type: ignore[union-attr]
        "source": "sensors",
        "key": "s-1",
    }
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1/windows") is None
    assert compile_route("files/{*path}").fullmatch("files/a/b").groupdict() == {"path": "a/b"}  # type: ignore[union-attr]


def test_route_literals_match_whatever_their_case_and_values_keep_theirs() -> None:
    # The Functions host (ASP.NET Core routing) compares a route's literal parts ignoring case.
    found = compile_route("state/{source}/{key}").fullmatch("STATE/Users/AbC")
    assert found is not None and found.groupdict() == {"source": "Users", "key": "AbC"}
    windows = compile_route("state/sensors/{key}/windows").fullmatch("State/SENSORS/S-1/Windows")
    assert windows is not None and windows.groupdict() == {"key": "S-1"}
    assert compile_route("files/{*path}").fullmatch("FILES/A/b").groupdict() == {"path": "A/b"}  # type: ignore[union-attr]
    assert compile_route("state/sensors/{key}/windows").fullmatch("state/sensors/s-1/window") is None


def test_only_ascii_letters_fold_in_route_literals() -> None:
    # Python's Unicode folding would let "ſ" (long s) and "K" (Kelvin sign) stand for "s" and "k".
    assert compile_route("state/{source}/{key}").fullmatch("\u017ftate/users/1") is None
    assert compile_route("keys/{key}").fullmatch("\u212aeys/1") is None


def test_an_http_function_is_reached_whatever_the_case_of_its_route_literals() -> None:
    function = IndexedFunction(
        "state_windows",
        ({"type": "httpTrigger", "name": "req", "route": "state/sensors/{key}/windows", "methods": ["get"]},),
        lambda req: None,
        None,
    )
    (route,) = http_routes([function])
    assert route.match("GET", "STATE/Sensors/s-1/WINDOWS") == {"key": "s-1"}
    assert route.match("POST", "STATE/Sensors/s-1/WINDOWS") is None
