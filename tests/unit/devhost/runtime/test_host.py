"""The local host's start-up decisions: its own schema registry served only when no other is named."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("settings", "served"),
    [
        ({}, True),
        ({"SCHEMA_REGISTRY_URL": " "}, True),
        ({"SCHEMA_REGISTRY_URL": "http://localhost:8081"}, False),
        ({"SCHEMA_REGISTRY_KIND": "eventhubs"}, False),
    ],
)
def test_the_local_host_serves_its_registry_only_when_no_other_is_named(settings: dict[str, str], served: bool) -> None:
    from devhost.runtime.host import serves_registry

    assert serves_registry(settings) is served
