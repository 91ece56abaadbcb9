"""Fitting an hour's tables to one schema (pure): the types each column takes, and how values get there."""

from __future__ import annotations

import pyarrow as pa

from shared.compaction.drift import TypeChange, fit_table, unknown_fields
from shared.compaction.rows import TIMESTAMP

AT_MS = 1_795_000_000_123


def test_epoch_milliseconds_fitted_to_a_timestamp_column_are_milliseconds() -> None:
    """A JSON lines file of a model that had ``created_at`` holds epoch ms (``shared.formats``); the Parquet file
    of the same model typed the column. Cast as Arrow casts integers, the ms were read as microseconds."""
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(pa.table({"created_at": [AT_MS, None]}), {"created_at": TIMESTAMP}, changes)
    expected = pa.array([AT_MS, None], pa.timestamp("ms", tz="UTC")).cast(TIMESTAMP)
    assert fitted.column("created_at").combine_chunks() == expected and changes["created_at"].moved == 0


def test_epoch_milliseconds_past_what_a_timestamp_holds_move_to_extra_alone() -> None:
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(pa.table({"created_at": [AT_MS, 2**62]}), {"created_at": TIMESTAMP}, changes)
    assert fitted.column("created_at").to_pylist()[1] is None and changes["created_at"].moved == 1
    assert fitted.column("created_at").cast(pa.int64()).to_pylist()[0] == AT_MS * 1000
    assert fitted.column("_extra").to_pylist() == [None, f'{{"created_at":{2**62}}}']


def test_struct_fields_the_target_lacks_are_named_through_nested_structs() -> None:
    wanted = pa.struct([("city", pa.string()), ("geo", pa.struct([("lat", pa.float64())]))])
    actual = pa.struct(
        [("zip", pa.string()), ("city", pa.string()), ("geo", pa.struct([("lat", pa.float64()), ("alt", pa.int64())]))]
    )
    assert unknown_fields(actual, wanted) == [("zip",), ("geo", "alt")]
    assert unknown_fields(wanted, actual) == [], "fields the values lack read null"


def test_values_of_struct_fields_the_target_lacks_move_to_extra_as_parent_dot_child() -> None:
    wanted = pa.struct([("city", pa.string()), ("geo", pa.struct([("lat", pa.float64())]))])
    values = [
        {"city": "Bergen", "zip": "5003", "geo": {"lat": 60.4, "alt": 12}},
        {"city": "Oslo", "zip": None, "geo": None},
        None,
    ]
    table = pa.table({"address": values, "_extra": ['{"color":"red"}', None, None]})
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(table, {"address": wanted, "_extra": pa.string()}, changes)
    assert fitted.column("address").to_pylist() == [
        {"city": "Bergen", "geo": {"lat": 60.4}},
        {"city": "Oslo", "geo": None},
        None,
    ]
    assert fitted.column("_extra").to_pylist() == [
        '{"color":"red","address.zip":"5003","address.geo.alt":12}',
        None,
        None,
    ]
    assert changes["address"].moved == 1


def test_a_list_of_structs_with_fields_the_target_lacks_moves_whole() -> None:
    """No ``parent.child`` name reaches a field inside a list's elements: the value moves under its column."""
    wanted = pa.list_(pa.struct([("sku", pa.string())]))
    table = pa.table({"items": [[{"sku": "a", "qty": 2}], None]})
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(table, {"items": wanted}, changes)
    assert fitted.column("items").to_pylist() == [None, None] and changes["items"].moved == 1
    assert fitted.column("_extra").to_pylist() == ['{"items":[{"sku":"a","qty":2}]}', None]


def test_a_cast_that_changes_a_value_inside_a_struct_or_list_is_a_misfit_kept_in_extra() -> None:
    """Review 2026-12-07: the check that a cast keeps each value was skipped for nested types, so "0501" inside a
    struct landed as 501 and [5, 0, -3] as [true, false, true], counted as nothing moved."""
    wanted = {"address": pa.struct([("zip", pa.int64())]), "flags": pa.list_(pa.bool_()), "_extra": pa.string()}
    table = pa.table(
        {
            "address": pa.array([{"zip": "0501"}, {"zip": "42"}], pa.struct([("zip", pa.string())])),
            "flags": pa.array([[5, 0, -3], [1, 0]], pa.list_(pa.int64())),
            "_extra": pa.array([None, None], pa.string()),
        }
    )
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(table, wanted, changes)
    assert fitted.column("address").to_pylist() == [None, {"zip": 42}]
    assert fitted.column("flags").to_pylist() == [None, [True, False]]
    assert fitted.column("_extra").to_pylist() == ['{"address":{"zip":"0501"},"flags":[5,0,-3]}', None]
    assert (changes["address"].moved, changes["flags"].moved) == (1, 1)


def test_a_widened_map_or_list_holding_nan_keeps_its_values() -> None:
    """The diff review: map entries read as tuples compared NaN with ``==``, so a widened map<string,float32> holding
    a NaN moved to ``_extra``, where NaN is written as null."""
    wanted = {"m": pa.map_(pa.string(), pa.float64()), "l": pa.list_(pa.float64())}
    table = pa.table(
        {
            "m": pa.array([[("a", float("nan"))], [("a", 1.5)]], pa.map_(pa.string(), pa.float32())),
            "l": pa.array([[float("nan")], [1.5]], pa.list_(pa.float32())),
        }
    )
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(table, wanted, changes)
    assert fitted.column("m").type == wanted["m"] and fitted.column("m").to_pylist()[1] == [("a", 1.5)]
    assert (changes["m"].moved, changes["l"].moved) == (0, 0) and "_extra" not in fitted.column_names
