"""Query the curated Delta tables with DuckDB: what a newcomer runs after ``make run``.

python -m tools.query                 # the local lake of `make run` (.lake)
python -m tools.query --lake DIR      # another local lake
LAKE_KIND=blob LAKE_CONNECTION_STRING=... python -m tools.query   # Azurite or a storage account

deltalake reads each table (to Arrow) and DuckDB queries the Arrow tables in place; DuckDB's own
Delta extension is not needed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder
from deltalake.exceptions import TableNotFoundError

from shared.compaction.location import delta_location
from shared.lake import open_lake
from shared.settings import load_settings

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


def load(name: str, lake: Path | None) -> pa.Table | None:
    """The whole curated table of one source as Arrow, or ``None`` before its first compaction."""
    environment = dict(os.environ)
    if lake is not None:
        environment |= {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(lake)}
    settings = load_settings(environment)
    location = delta_location(settings, name, environment)
    try:
        table = DeltaTable(location.uri, storage_options=location.storage_options)
    except TableNotFoundError:
        return None
    files, version = len(table.file_uris()), table.version()
    rows = pa.table(QueryBuilder().register("t", table).execute("SELECT * FROM t"))
    hours = len(set(zip(rows.column("date").to_pylist(), rows.column("hour").to_pylist(), strict=True)))
    raw_files = len(open_lake(settings).list_paths(f"raw/{name}"))
    print(f"curated/{name}: {rows.num_rows} rows in {files} files, {hours} hours, v{version} (raw/: {raw_files} files)")
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.query", description=__doc__.splitlines()[0])
    parser.add_argument("--lake", type=Path, help="local lake directory (default: settings, i.e. .lake)")
    arguments = parser.parse_args(argv)
    clickstream, sensors = load("clickstream", arguments.lake), load("sensors", arguments.lake)
    if clickstream is None or sensors is None:
        print("no curated tables yet: run `make run` first (it compacts before it exits)", file=sys.stderr)
        return 1
    connection = duckdb.connect()
    connection.register("clickstream", clickstream)
    connection.register("sensors", sensors)
    print("\nPage views per user and hour (top 10, bots excluded):")
    connection.sql(PAGE_VIEWS_PER_USER_AND_HOUR).show()
    print("Sensor averages per minute (latest 10):")
    connection.sql(SENSOR_AVERAGES_PER_MINUTE).show()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
