"""The compact_<source> timers as the host indexes and runs them; deltalake stays out of cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, QueryBuilder

from shared.batch import process_batch
from shared.formats import format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW_MS, ROOT, records_for

INDEX = """
import json, sys, function_app
out = {}
for f in function_app.app.get_functions():
    out[f.get_function_name()] = json.loads(f.get_function_json())
print(json.dumps({"functions": out, "deltalake_loaded": "deltalake" in sys.modules}))
"""
RUN = """
import json, function_app
(compact,) = [f for f in function_app.app.get_functions() if f.get_function_name() == "compact_sensors"]
compact.get_user_function()(timer=None)
print(json.dumps({"done": True}))
"""


def _python(script: str, env: dict[str, str]) -> dict[str, object]:
    clean = {k: v for k, v in os.environ.items() if k not in ("KAFKA_SECURITY_PROTOCOL", "LAKE_KIND")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=clean | env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def test_one_compaction_timer_per_source_and_no_deltalake_at_indexing() -> None:
    schedules = {f"{source.upper()}_COMPACTION_SCHEDULE": "0 */15 * * * *" for source in SOURCES}  # as app settings
    indexed = _python(INDEX, schedules)
    assert indexed["deltalake_loaded"] is False, "indexing the app (every function's cold start) loaded deltalake"
    functions = indexed["functions"]
    assert isinstance(functions, dict)
    for source in SOURCES:
        (trigger,) = [b for b in functions[f"compact_{source}"]["bindings"] if b["type"] == "timerTrigger"]
        assert trigger["schedule"] == f"%{source.upper()}_COMPACTION_SCHEDULE%"
        assert trigger["useMonitor"] is True and trigger["runOnStartup"] is False


def test_the_timer_compacts_the_sources_closed_hours(tmp_path: Path) -> None:
    source = get_source("sensors")
    batch = process_batch(source, records_for(source, 30), max_record_bytes=100_000)
    land(
        LocalLake(tmp_path), plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)
    )  # an hour long closed by now
    assert _python(RUN, {"LAKE_LOCAL_ROOT": str(tmp_path)}) == {"done": True}
    table = DeltaTable(str(tmp_path / "curated" / "sensors"))
    assert pa.table(QueryBuilder().register("t", table).execute("SELECT count(*) AS n FROM t"))["n"][0].as_py() == 30
