"""One timer-triggered function per source (``compact_<source>``): closed raw hours -> ``curated/<source>``.

``deltalake`` is imported inside the function body, on the first compaction run, so indexing the
app and the processing functions' cold start do not load it.
"""

from __future__ import annotations

import os
import time

import azure.functions as func

from functions.bindings import lake, setting_ref
from shared.settings import current_settings
from shared.sources import SOURCES, Source

bp = func.Blueprint()


def _register(source: Source) -> None:
    @bp.function_name(name=f"compact_{source.name}")
    @bp.timer_trigger(
        arg_name="timer",
        schedule=setting_ref(source.name, "compaction_schedule"),
        run_on_startup=False,
        use_monitor=True,
    )
    def compact(timer: func.TimerRequest) -> None:
        """Called on every tick of ``<SOURCE>_COMPACTION_SCHEDULE``; the Functions host runs one at a time."""
        from shared.compaction.job import run_compaction

        run_compaction(source.name, lake(), current_settings(), now_ms=int(time.time() * 1000), environ=os.environ)


for _source in SOURCES.values():
    _register(_source)
