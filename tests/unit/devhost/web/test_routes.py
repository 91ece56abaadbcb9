"""HTTP trigger route templates as matchers."""

from __future__ import annotations

from devhost.web.routes import compile_route


def test_route_templates() -> None:
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1").groupdict() == {  # type: ignore[union-attr]
        "source": "sensors",
        "key": "s-1",
    }
    assert compile_route("state/{source}/{key}").fullmatch("state/sensors/s-1/windows") is None
    assert compile_route("files/{*path}").fullmatch("files/a/b").groupdict() == {"path": "a/b"}  # type: ignore[union-attr]
