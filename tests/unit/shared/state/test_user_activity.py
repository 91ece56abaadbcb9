"""A user's counters stay within what a bucket's JSON state can hold, so one key never stops its bucket."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path
from typing import Any

import orjson

from shared.batch import process_batch
from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.records import KafkaRecord, offset_spans
from shared.source_model import INT64_MAX
from shared.sources import SOURCES
from shared.state import user_activity
from shared.state.aggregate import Signal, signals_for
from shared.state.bucket_state import key_state
from shared.state.buckets import bucket_for
from shared.state.lookups import StateJoiner
from shared.state.sessions import KEPT_DETAIL, sessions_view
from tests.conftest import FIXED_NOW_MS, context_for, records_for
from tests.unit.functions.test_entities import run_entity
from tests.unit.shared.conftest import ApplyingGateway

BUCKETS = 256
SOURCE = SOURCES["clickstream"]


def _click(user: int, offset: int, size: str) -> KafkaRecord:
    template = records_for(SOURCE, 1)[0]
    value = json.dumps(json.loads(template.value or b"{}") | {"userid": user, "bytes": size}).encode()
    return dataclasses.replace(template, offset=offset, key=str(user), value=value)


def _signal(records: list[KafkaRecord]) -> Signal:
    batch = process_batch(SOURCE, records, max_record_bytes=1 << 20, keyed=True)
    (signal,) = signals_for("clickstream", batch.rows(), offset_spans(records), buckets=BUCKETS)
    return signal


def test_a_byte_total_past_64_bits_is_held_at_its_largest_and_the_bucket_keeps_counting() -> None:
    neighbour = next(u for u in range(8, 10_000) if bucket_for(str(u), BUCKETS) == bucket_for("7", BUCKETS))
    first = _signal([_click(7, 0, "999999999999999")])
    state, _ = run_entity("user_activity", None, [("apply", first.payload)], key=first.key)
    assert state is not None
    held = key_state(state, "7") or {}
    state["keys"]["7"] = orjson.dumps(held | {"bytes": INT64_MAX - 10}).decode()  # 18,446 such clicks later
    second = _signal([_click(7, 1, "999999999999999"), _click(neighbour, 2, "278")])
    state, results = run_entity("user_activity", state, [("apply", second.payload)], key=second.key)
    assert not results[0]["isError"], results[0]["result"]
    assert (key_state(state, "7") or {})["bytes"] == INT64_MAX
    assert (key_state(state, str(neighbour)) or {})["page_views"] == 1


def _long_path_click(offset: int, user: int, ms: int, path: str) -> KafkaRecord:
    value = {
        "ip": "10.0.0.1", "userid": user, "remote_user": "-", "time": "24/Nov/2026:10:30:00 +0000", "_time": ms,
        "request": f"GET {path} HTTP/1.1", "status": "200", "bytes": "10", "referrer": "-", "agent": "x",
    }  # fmt: skip
    return KafkaRecord("clickstream", 0, offset, str(user), json.dumps(value).encode(), FIXED_NOW_MS)


def test_ten_users_with_8_kb_paths_keep_their_bucket_under_the_256_kb_ceiling(tmp_path: Path) -> None:
    """Each user's four kept sessions hold the path of their last click (up to 8 KB passes the model):
    uncapped, ten users a producer invents in one bucket took it to ~320 KB (docs/scale.md: 256 KB a bucket)."""
    target = bucket_for("1", BUCKETS)
    users = [u for u in range(1, 100_000) if bucket_for(str(u), BUCKETS) == target][:10]
    start = FIXED_NOW_MS - 3 * 3600_000
    records = [
        _long_path_click(i * 4 + session, user, start + session * 31 * 60_000,
                         "/" + f"{user}-{session}-".ljust(7_900, "a"))
        for i, user in enumerate(users)
        for session in range(4)  # 31 minutes apart: the current session and three kept closed
    ]  # fmt: skip
    gateway = ApplyingGateway()
    asyncio.run(handle_batch_with_state(context_for(SOURCE, LocalLake(tmp_path)), records, gateway, StateJoiner()))
    sizes = {key: len(text) for (entity, key), text in gateway.states.items() if entity == "user_activity"}
    assert list(sizes) == [target] and sizes[target] < 256 * 1024, sizes
    shown = sessions_view(gateway.key_states("user_activity")[str(users[0])])
    assert [len(s["last"]) for s in [*shown["closed_sessions"], shown["session"]]] == [KEPT_DETAIL] * 4


def test_a_user_once_seen_as_a_bot_stays_a_bot() -> None:
    """``bot`` is sticky: a later human-looking click does not clear it, whichever batch it comes in."""
    state: dict[str, Any] = {}
    user_activity.fold(state, [[0, FIXED_NOW_MS, "2xx", 10, True, "/robots.txt"]], {})
    user_activity.fold(state, [[1, FIXED_NOW_MS + 1, "2xx", 10, False, "/home"]], {})
    assert state["bot"] is True and state["page_views"] == 2
