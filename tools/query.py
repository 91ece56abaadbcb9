"""Query the curated Delta tables with DuckDB: what a newcomer runs after ``make run``.

python -m tools.query                 # the lake the settings name (the local .lake of `make run` by default)
python -m tools.query --lake DIR      # another local lake
python -m tools.query --drift [SOURCE ...]   # schema drift per source and hour, from the compaction commits
LAKE_KIND=blob LAKE_CONNECTION_STRING=... python -m tools.query   # Azurite or a storage account

Settings (the lake) come from ``local.settings.json``'s Values (``--settings``), overridden by the
environment, as the other tools read them; ``--lake`` names a local lake over both.
deltalake reads each table (to Arrow) and DuckDB queries the Arrow tables in place; DuckDB's own
Delta extension is not needed.
Exit codes: 0 done (a table not there yet is named, the other one queried); 1 no curated tables yet; 2 bad
arguments or settings (an unknown source, a setting named in one line); 3 the lake could not be read, or a curated
table lacks a column its queries read or has it of another type (a table of another version or writer; the table
and column named in one line).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import DeltaError, TableNotFoundError

from shared.compaction.drift import cut_name, drift_from_history, fields_text, printable
from shared.compaction.location import delta_location
from shared.errors import LakeError, LakeUnavailable, UnsafePath
from shared.lake import open_lake
from shared.settings import load_settings
from tools.cli import MAX_ERROR_TEXT, lake_target, one_line, tool_environment, tool_main

PROG = "python -m tools.query"
EXIT_NO_TABLES = 1
EXIT_BAD_ARGUMENTS = 2  # argparse's own
EXIT_LAKE_UNREADABLE = 3

PAGE_VIEWS_PER_USER_AND_HOUR = """
    SELECT date_trunc('hour', _event_time) AS hour, userid, count(*) AS page_views,
           count(DISTINCT request_path) AS pages, sum(bytes) AS bytes
    FROM clickstream
    WHERE NOT is_bot
    GROUP BY ALL ORDER BY page_views DESC, hour, userid LIMIT 10
"""
SENSOR_AVERAGES_PER_MINUTE = """
    SELECT date_trunc('minute', _event_time) AS minute, sensor_id, metric, count(*) AS readings,
           round(avg(value), 2) AS average, unit
    FROM sensors
    GROUP BY ALL ORDER BY minute DESC, sensor_id, metric LIMIT 10
"""


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind))


# What the queries above (and ``load``'s count of hours) read of each curated table: a column and the Arrow types
# it may have (None: any), described for the one line that names a column of another type.
TypeCheck = tuple[str, Callable[[pa.DataType], bool]] | None
TIMESTAMP: TypeCheck = ("a timestamp", pa.types.is_timestamp)
QUERIED_COLUMNS: dict[str, dict[str, TypeCheck]] = {
    "clickstream": {
        "_event_time": TIMESTAMP,
        "userid": None,
        "request_path": None,
        "bytes": ("a number", _numeric),
        "is_bot": ("a boolean", pa.types.is_boolean),
        "date": None,
        "hour": None,
    },
    "sensors": {
        "_event_time": TIMESTAMP,
        "sensor_id": None,
        "metric": None,
        "value": ("a number", _numeric),
        "unit": None,
        "date": None,
        "hour": None,
    },
}


class LakeUnreadable(Exception):
    """deltalake could not read a table: the store did not answer (an ``OSError``) or refused."""


class TableMismatch(Exception):
    """A curated table the queries cannot run on: a column they read is missing or of another type (a table
    of another version or writer)."""


def check_columns(name: str, schema: pa.Schema) -> None:
    """``TableMismatch`` naming the first column of ``QUERIED_COLUMNS[name]`` that ``schema`` lacks or has of
    another type."""
    for column, check in QUERIED_COLUMNS.get(name, {}).items():
        index = schema.get_field_index(column)
        if index < 0:
            raise TableMismatch(f"curated/{name} has no column {_shown(column)!r}, which its queries read")
        kind = schema.field(index).type
        if check is not None and not check[1](kind):
            raise TableMismatch(
                f"curated/{name}: column {_shown(column)!r} is {_shown(kind)}, its queries need {check[0]}"
            )


def open_table(name: str, environment: dict[str, str]) -> DeltaTable | None:
    """The curated table of one source, or ``None`` before its first compaction."""
    location = delta_location(load_settings(environment), name, environment)
    try:
        return DeltaTable(location.uri, storage_options=location.storage_options)
    except TableNotFoundError:
        return None
    except (OSError, DeltaError) as error:  # deltalake's own errors: no LakeUnavailable of shared.lake
        raise LakeUnreadable(str(error)) from error


def load(name: str, environment: dict[str, str]) -> pa.Table | None:
    """The whole curated table of one source as Arrow, or ``None`` before its first compaction."""
    table = open_table(name, environment)
    if table is None:
        return None
    settings = load_settings(environment)
    files, version = len(table.file_uris()), table.version()
    try:
        rows = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t"))
    except (OSError, DeltaError, pa.ArrowException) as error:  # the store, or a data file it cannot decode
        raise LakeUnreadable(f"curated/{name}: {error}") from error
    check_columns(name, rows.schema)
    try:
        hours = len(set(zip(rows.column("date").to_pylist(), rows.column("hour").to_pylist(), strict=True)))
    except (KeyError, TypeError, pa.ArrowException) as error:  # a backstop for what check_columns passed
        raise TableMismatch(f"curated/{name}: cannot count its hours ({one_line(error, MAX_ERROR_TEXT)})") from error
    raw_files = len(open_lake(settings).list_paths(f"raw/{name}"))
    print(f"curated/{name}: {rows.num_rows} rows in {files} files, {hours} hours, v{version} (raw/: {raw_files} files)")
    return rows


def print_drift(sources: list[str], environment: dict[str, str]) -> int:
    """Per source and hour: new fields (in _extra), type changes, new columns, null rates. A source neither
    registered nor with a curated table (a typo) is an error naming the known sources, not "no table yet"; one
    no longer registered whose table remains is still reported."""
    from shared.sources import SOURCES

    unknown = [name for name in sources if name not in SOURCES and not _is_table(name, environment)]
    if unknown:
        print(
            f"{PROG}: unknown source{'s' * (len(unknown) > 1)} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(SOURCES)}",
            file=sys.stderr,
        )
        return EXIT_BAD_ARGUMENTS
    for name in sources:
        table = open_table(name, environment)
        if table is None:
            print(f"curated/{name}: no table yet")
            continue
        hours = drift_from_history(table.history())
        print(f"curated/{name}: drift per hour (its newest compaction), {len(hours)} hours")
        for document in hours:
            print("  " + drift_line(document))
    return 0


def _is_table(name: str, environment: dict[str, str]) -> bool:
    """Whether ``curated/<name>`` holds a table; a name no path may hold (``..``, empty, too long) never does."""
    try:
        return open_table(name, environment) is not None
    except UnsafePath:
        return False


def drift_line(document: dict[str, Any]) -> str:
    """One hour of a drift report as text, one line whatever the commit holds: names and types ``printable``,
    at most ``NEW_FIELDS_REPORTED`` new fields (a commit of older code may name every one), and a part of another
    writer's shape (a list for an object, text for a number) left out rather than a traceback."""
    approximate = document.get("fields_approximate") is True
    new_fields = {str(name): rows for name, rows in _object(document, "new_fields").items() if _is_count(rows)}
    more = document.get("more_fields")
    fields = fields_text(new_fields, more if _is_count(more) else 0, approximate) or "-"
    changes = (
        ", ".join(
            f"{_shown(name)} {_shown(change.get('landed'))} -> {_shown(change.get('curated'))} "
            f"({_shown(change.get('moved'))} to _extra)"
            for name, change in _object(document, "type_changes").items()
            if isinstance(change, dict)
        )
        or "-"
    )
    rates = _object(document, "null_rates").items()
    nulls = ", ".join(f"{_shown(name)} {rate:.0%}" for name, rate in rates if _is_rate(rate)) or "-"
    listed = document.get("new_columns")
    columns = ", ".join(_shown(name) for name in (listed if isinstance(listed, list) else [])) or "-"
    hour = _shown(f"{document.get('date')}T{document.get('hour')}")
    return (
        f"{hour}  rows {_shown(document.get('rows'))}  new fields: {fields}  type changes: {changes}  "
        f"new columns: {columns}  null rates: {nulls}"
    )


def _object(document: dict[str, Any], name: str) -> dict[Any, Any]:
    value = document.get(name)
    return value if isinstance(value, dict) else {}


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_rate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1


def _shown(text: Any) -> str:
    return printable(cut_name(str(text)))


@tool_main(PROG)
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="local lake directory (default: settings, i.e. .lake)")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help="settings file (Values)")
    parser.add_argument("--drift", nargs="*", metavar="SOURCE", help="print schema drift per hour (default: all)")
    arguments = parser.parse_args(argv)
    environment = tool_environment(arguments.settings, lake=arguments.lake)
    try:
        return _query(arguments.drift, environment)
    except (LakeUnreadable, LakeUnavailable, LakeError) as error:
        where = lake_target(load_settings(environment))
        print(f"{PROG}: cannot read the lake ({where}): {one_line(error, MAX_ERROR_TEXT)}", file=sys.stderr)
        return EXIT_LAKE_UNREADABLE
    except TableMismatch as error:  # the same class: what is in the lake cannot be queried
        where = lake_target(load_settings(environment))
        print(
            f"{PROG}: cannot query the lake ({where}): {one_line(error, MAX_ERROR_TEXT)} "
            "(a table of another version or writer?)",
            file=sys.stderr,
        )
        return EXIT_LAKE_UNREADABLE


def _query(drift: list[str] | None, environment: dict[str, str]) -> int:
    if drift is not None:
        from shared.sources import SOURCES

        return print_drift(drift or list(SOURCES), environment)
    tables = {name: load(name, environment) for name in ("clickstream", "sensors")}
    if all(table is None for table in tables.values()):
        print("no curated tables yet: run `make run` first (it compacts before it exits)", file=sys.stderr)
        return EXIT_NO_TABLES
    connection = duckdb.connect()
    for title, name, query in (
        ("Page views per user and hour (top 10, bots excluded)", "clickstream", PAGE_VIEWS_PER_USER_AND_HOUR),
        ("Sensor averages per minute (latest 10)", "sensors", SENSOR_AVERAGES_PER_MINUTE),
    ):
        if tables[name] is None:  # its source off, or not compacted yet: the other table's query still runs
            print(f"\n{title}: curated/{name} has no table yet")
            continue
        connection.register(name, tables[name])
        try:  # a backstop for what check_columns passed: DuckDB's binder or a conversion it refuses
            text = table_text(connection.sql(query))
        except duckdb.Error as error:
            raise TableMismatch(f"curated/{name}: its query failed ({one_line(error, MAX_ERROR_TEXT)})") from error
        print(f"\n{title}:")
        print(text)
    return 0


def table_text(relation: duckdb.DuckDBPyRelation) -> str:
    """A query's rows as an aligned text table, every value ``printable``: ids, metrics and units are the
    producers' text, and DuckDB's own ``show`` passes a bidi override to the terminal as it is."""
    header = [_shown(name) for name in relation.columns]
    rows = [["NULL" if value is None else _shown(value) for value in row] for row in relation.fetchall()]
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [header, ["-" * width for width in widths], *rows]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() for line in lines
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
