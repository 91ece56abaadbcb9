"""The registry of sources: hand-written and Datagen-config sources, each transforming to its declared
columns; an unknown name is a clear error."""

from __future__ import annotations

import pytest

from shared.settings import load_source_settings
from shared.source_model import record_validator
from shared.sources import CONFIG_SOURCES, SOURCES, get_source
from tests.conftest import records_for


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_generated_records_validate_and_transform_to_the_declared_columns(name: str) -> None:
    source = get_source(name)
    records = records_for(source, 50)
    assert len(records) == 50  # a generator giving nothing would pass every check below
    for record in records:
        event = record_validator(source.model).validate_json(record.value or b"")
        assert set(source.transform(event)) == set(source.column_names)


def test_unknown_source_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="unknown source 'nope'"):
        get_source("nope")


def test_shipped_orders_config_is_a_registered_source_with_its_defaults() -> None:
    assert "orders" in SOURCES and SOURCES["orders"] in CONFIG_SOURCES
    orders = load_source_settings("orders", {})
    assert (orders.topic, orders.consumer_group, orders.state_enabled) == ("orders", "orders-processor", False)
    assert orders.generator_events_per_tick == 20  # max.interval 1000 ms: 2 records/s, 20 per 10 s tick
    assert orders.generator_iterations == 10_000_000
    columns = SOURCES["orders"].column_names
    assert columns == [
        "ordertime",
        "orderid",
        "itemid",
        "orderunits",
        "address_city",
        "address_state",
        "address_zipcode",
    ]
