"""An hour's drift report (pure): the names of unknown fields are the producers' choice, so the report is
bounded whatever they send (the most frequent names, each cut, and a count of the rest) and every name
is escaped where it is logged or printed; the commit keeps it as a JSON string."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from shared.compaction.drift import (
    CUT_MARK,
    FIELD_NAME_CHARS,
    FIELDS_TRACKED,
    METADATA_KEY,
    NEW_FIELDS_REPORTED,
    DriftTally,
    HourDrift,
    TypeChange,
    fit_tables,
    printable,
    report,
)
from tests.unit.shared.compaction.conftest import H10
from tools.query import drift_line

# A name that starts a log line of its own, sets the terminal's title (OSC, ended by BEL) and clears the screen.
FORGED = "x\n2026-11-27 10:00:00 ERROR streamingpoc.compaction: forged line\x1b]0;owned\x07\x1b[2J"
REPORT_BYTES = 64 * 1024  # what one log line or one commit's drift metadata may take, at most


def extras(documents: list[dict[str, Any]]) -> pa.Table:
    return pa.table(
        {
            "orderid": pa.array(range(len(documents)), pa.int64()),
            "_extra": pa.array([orjson.dumps(document).decode() for document in documents], pa.string()),
        }
    )


def tally_of(*tables: pa.Table) -> DriftTally:
    tally = DriftTally(frozenset(tables[0].column_names))
    for table in tables:
        tally.add(table)
    return tally


def report_of(*tables: pa.Table) -> HourDrift:
    return tally_of(*tables).report(H10, None, {})


def printed(drift: HourDrift) -> str:
    """What ``python -m tools.query --drift`` prints for the hour, read back from its commit."""
    return drift_line(orjson.loads(drift.metadata()[METADATA_KEY]))


def test_a_field_name_cannot_forge_a_log_line_or_drive_a_terminal() -> None:
    drift = report_of(extras([{FORGED: 1}]))
    for text in (drift.summary(), printed(drift)):  # the compaction's warning line; tools.query --drift
        assert "\n" not in text and "\x1b" not in text and "\x07" not in text, repr(text)
        assert "x\\n2026-11-27 10:00:00 ERROR" in text and "\\x1b]0;owned\\x07\\x1b[2J (1)" in text, text
    assert orjson.loads(drift.metadata()[METADATA_KEY])["new_fields"] == {FORGED: 1}, "the commit keeps it as JSON"


def test_printable_escapes_what_a_terminal_acts_on_and_keeps_the_rest() -> None:
    assert printable("address.zip4 é 日本") == "address.zip4 é 日本"
    assert printable("a\tb\r\n\x00\x7f\x9b") == "a\\tb\\r\\n\\x00\\x7f\\x9b"  # \x9b: the 8-bit CSI
    assert printable("\u202etxt.exe\u2028\U000e0001") == "\\u202etxt.exe\\u2028\\U000e0001"  # bidi, separator, tag
    assert printable("\\x1b") == "\\\\x1b", "a backslash is escaped too: an escape shown is never one sent"


def test_the_report_of_an_hour_is_bounded_whatever_producers_send() -> None:
    """20,000 names of 206 characters made a 4.26 MB commit and a 4.28 MB log line."""
    drift = report_of(extras([{f"f{n:06d}_" + "x" * 200: 1} for n in range(20_000)]))
    assert len(drift.metadata()[METADATA_KEY]) <= REPORT_BYTES
    assert len(drift.summary()) <= REPORT_BYTES and len(printed(drift)) <= REPORT_BYTES
    assert len(drift.new_fields) == NEW_FIELDS_REPORTED
    assert drift.more_fields == 20_000 - NEW_FIELDS_REPORTED and drift.fields_approximate
    assert all(len(name) == FIELD_NAME_CHARS + 1 and name.endswith(CUT_MARK) for name in drift.new_fields)
    assert drift.summary().endswith(
        f", +{20_000 - NEW_FIELDS_REPORTED} more (approximate: over {FIELDS_TRACKED} distinct names)"
    )


def test_the_tally_holds_a_bounded_number_of_names_while_it_counts() -> None:
    tally = DriftTally(frozenset(["orderid", "_extra"]))
    for part in range(20):  # an hour is counted slice by slice
        tally.add(extras([{f"p{part}_{n}": 1, f"q{part}_{n}": 2} for n in range(1_000)]))
        assert len(tally.fields) < FIELDS_TRACKED
    assert tally.rows == 20_000 and tally.fields_dropped + len(tally.fields) == 40_000


def test_the_most_frequent_names_are_reported_ties_by_name_whatever_the_order() -> None:
    documents = [{"coupon": n, f"once{n:02d}": n} for n in range(60)] + [{"gift": True}] * 3
    expected = {"coupon": 60, "gift": 3} | {f"once{n:02d}": 1 for n in range(NEW_FIELDS_REPORTED - 2)}
    for seed in range(3):
        random.Random(seed).shuffle(documents)
        drift = report_of(extras(documents))
        assert drift.new_fields == expected
        assert drift.more_fields == 62 - NEW_FIELDS_REPORTED and not drift.fields_approximate
    assert drift.summary().startswith("63 rows; new fields coupon (60), gift (3), once00 (1), ")
    assert drift.summary().endswith(", once47 (1), +12 more")


def test_a_frequent_name_keeps_its_exact_count_through_a_flood_of_names_seen_once() -> None:
    """Past ``FIELDS_TRACKED`` names the less frequent half is dropped: a field most rows carry stays."""
    drift = report_of(*(extras([{"voucher": 1, f"junk{part}_{n}": 1} for n in range(500)]) for part in range(10)))
    assert drift.new_fields["voucher"] == 5_000 and drift.fields_approximate
    assert drift.more_fields == 5_000 - (NEW_FIELDS_REPORTED - 1), "each name seen once is counted once"


def test_a_long_name_is_cut_and_a_row_counts_once_for_names_that_cut_the_same() -> None:
    long = "a" * FIELD_NAME_CHARS
    drift = report_of(extras([{long + "1": 1, long + "2": 2}, {long + "3": 3}, {long: 4}]))
    assert drift.new_fields == {long: 1, long + CUT_MARK: 2}


def test_an_hour_without_unknown_fields_reports_none() -> None:
    drift = report_of(pa.table({"orderid": [1, 2], "_extra": pa.array([None, "{}"], pa.string())}))
    assert drift.new_fields == {} and drift.more_fields == 0 and not drift.drifted
    assert drift.summary() == "2 rows"


def test_a_misfit_of_a_dotted_column_is_not_reported_as_a_new_field() -> None:
    """A value of a column whose type changed moves to ``_extra`` under ``field_key(column.name)`` (its ``.``
    escaped): the tally leaves that key out of the new fields, as it does an undotted column's name (a foreign
    Parquet file's column ``a.b``; ``a\\.b`` is no field a producer sent)."""
    curated = pa.schema([pa.field("id", pa.int64()), pa.field("a.b", pa.int64())])
    landed = pa.table({"id": pa.array([1, 2], pa.int64()), "a.b": pa.array(["1", "x"], pa.string())})
    (fitted,), changes = fit_tables(curated, [landed])
    assert changes["a.b"].moved == 1
    drift = report(H10, fitted, curated, changes)
    assert drift.new_fields == {}, drift.new_fields


def test_column_names_and_types_in_a_summary_are_escaped_too() -> None:
    """Columns of a foreign raw file are named by whoever wrote it."""
    drift = HourDrift(H10, rows=1, new_columns=["c\x1b[2J"], type_changes={"t\n": TypeChange("int64", "string", 1)})
    assert drift.summary() == "1 rows; new columns c\\x1b[2J; t\\n string -> int64 (1 to _extra)"


def test_the_architecture_doc_states_the_bounds_the_code_keeps() -> None:
    text = " ".join((Path(__file__).parents[4] / "docs" / "architecture.md").read_text().split())
    assert f"the {NEW_FIELDS_REPORTED} names the most rows carry (`NEW_FIELDS_REPORTED`" in text
    assert f"cut to {FIELD_NAME_CHARS} characters (`FIELD_NAME_CHARS`)" in text
    assert f"holds under {FIELDS_TRACKED:,} names (`FIELDS_TRACKED`" in text
