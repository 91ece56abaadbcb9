"""A state move meets what was damaged outside this code (a raw file, a bucket's bookkeeping, a key's stored text,
what a bucket set aside), which the entity itself tolerates (shared/state/bucket_state.py): never a traceback; moved
as stored where it can be, named, exit 1. Against the in-memory fakes of test_migrate_state (a review's cases)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.lake import LocalLake
from shared.state.bucket_counts import RECORD_PATH, BucketCounts
from shared.state.bucket_state import key_state, key_text
from shared.state.buckets import bucket_for
from shared.state.keys import encode_key
from shared.state.migration import parse_export
from tests.unit.tools.test_migrate_state import (
    KIND,
    FakeEntityApi,
    _deployment,
    _events,
    _main_argv,
    _per_key_deployment,
    _use,
)
from tools import migrate_state


def _raw_file(key: str, offset: int) -> bytes:
    row = {"device_id": key, "_topic": "mobile", "_partition": 0, "_offset": offset, "_event_time": 1_700_000_000_000}
    return gzip.compress(orjson.dumps(row) + b"\n")


def test_a_damaged_raw_file_is_named_in_one_line_the_other_files_are_read_and_the_move_from_per_key_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = _per_key_deployment()
    api.queued.clear()
    lake = LocalLake(tmp_path)
    lake.create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    lake.create("raw/mobile/date=2026-12-01/hour=00/p0-0-9.jsonl.gz", b"truncated")
    lake.create("raw/mobile/date=2026-12-01/hour=00/p0-10-19.jsonl.gz", _raw_file("device-2", 10))
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path)) == 1  # not reconciled: a key only that file holds is not moved
    out, err = capsys.readouterr()
    (named,) = [line for line in out.splitlines() if "p0-0-9.jsonl.gz" in line]
    assert "cannot read raw file" in named and "BadGzipFile" in named, named
    assert "Traceback" not in err
    assert _events(api, "device-2", 4) == 1  # the key of the readable file moved


DAMAGED_BOOKKEEPING = [
    ("_applied", [["mobile/0/0", 0, 9]]),
    ("_owed", "x"),
    ("_origins", ["~b0of2"]),
    ("_refused", 7),
]


@pytest.mark.parametrize(("field", "damaged"), DAMAGED_BOOKKEEPING)
def test_a_bucket_whose_bookkeeping_is_damaged_moves_its_keys_to_another_n_is_named_and_the_run_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], field: str, damaged: Any
) -> None:
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    home = bucket_for("device-3", 4)
    api.states[home][field] = damaged  # the entity sets such a field aside and applies on
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path, "--to-buckets", "3")) == 1
    assert all(_events(api, f"device-{i}", 3) == 1 for i in range(10))
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3  # every key is in its new bucket: the move completed
    (named,) = [line for line in capsys.readouterr().out.splitlines() if f"bucket {home} keeps" in line]
    assert field in named, named


@pytest.mark.parametrize(("field", "damaged"), DAMAGED_BOOKKEEPING[:2])
def test_a_bucket_whose_bookkeeping_is_damaged_is_exported_named_and_the_export_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], field: str, damaged: Any
) -> None:
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    home = bucket_for("device-3", 4)
    api.states[home][field] = damaged
    _use(monkeypatch, tmp_path, api)
    path = tmp_path / "state.json"
    assert migrate_state.cli(_main_argv(tmp_path, "--export", str(path))) == 1
    assert len(parse_export(path.read_bytes(), {"mobile": KIND.name})["mobile"].states) == 10
    assert f"bucket {home} keeps what was not moved" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "carried"),
    [
        ("{not json", "{not json"),
        ("[1, 2]", [1, 2]),
        ('{"events": 1, "_applied": {"mobile/0/0": [[0,', ['{"events": 1, "_applied": {"mobile/0/0": [[0,']),
        ("7", [7]),
    ],
    ids=["not-json", "a-list", "truncated", "a-number"],
)
def test_a_key_whose_stored_text_is_not_a_json_object_moves_to_another_n_as_stored_named_and_the_run_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], text: str, carried: Any
) -> None:
    """Its new bucket holds it, still damaged (GET /api/state answers it as damaged, not 404), the JSON of what was
    stored (wrapped in a list where adopt would refuse it: it names ``_applied``, it is a number); its next event
    sets it aside and counts afresh, as the entity does with any damaged key."""
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    api.states[bucket_for("device-3", 4)]["keys"]["device-3"] = text
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path, "--to-buckets", "3")) == 1
    assert "not upgraded, kept as stored: 'device-3' (not a JSON object" in capsys.readouterr().out
    assert BucketCounts(LocalLake(tmp_path)).of("mobile") == 3
    home = bucket_for("device-3", 3)
    held = key_text(api.states[home], "device-3")
    assert held is not None and orjson.loads(held) == carried and key_state(api.states[home], "device-3") is None
    assert all(_events(api, f"device-{i}", 3) == 1 for i in range(10) if i != 3)
    api.apply(home, {"device-3": [12]}, (12, 12))
    assert _events(api, "device-3", 3) == 1 and api.states[home]["_unreadable"]["device-3"] == held


def test_a_key_whose_stored_text_is_not_a_json_object_is_exported_as_stored_named_and_imported_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = FakeEntityApi()
    _deployment(tmp_path, old)
    old.states[bucket_for("device-3", 4)]["keys"]["device-3"] = "{not json"
    _use(monkeypatch, tmp_path, old)
    path = tmp_path / "state.json"
    assert migrate_state.cli(_main_argv(tmp_path, "--export", str(path))) == 1
    assert "'device-3' (not a JSON object" in capsys.readouterr().out
    new = FakeEntityApi()
    _use(monkeypatch, tmp_path, new)
    assert migrate_state.cli(_main_argv(tmp_path, "--import", str(path))) == 0
    assert key_text(new.states[bucket_for("device-3", 4)], "device-3") == '"{not json"'
    assert all(_events(new, f"device-{i}", 4) == 1 for i in range(10) if i != 3)


def _set_aside_unreadable(api: FakeEntityApi, home: str) -> None:
    api.states[home]["keys"]["device-3"] = "{not json"
    api.apply(home, {"device-3": [12]}, (12, 12))  # the entity sets the damaged text aside under _unreadable
    assert api.states[home]["_unreadable"] == {"device-3": "{not json"}


def _refused(api: FakeEntityApi, home: str) -> None:
    api.states[home]["_refused"] = {"device-3": {"mobile/0/0": [12]}}  # a fold bug's offsets, kept for a person


@pytest.mark.parametrize(("set_aside", "field"), [(_set_aside_unreadable, "_unreadable"), (_refused, "_refused")])
def test_what_an_old_bucket_set_aside_is_named_by_a_move_to_another_n_which_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], set_aside: Any, field: str
) -> None:
    """A bucket's adopt takes keys and origins only: what the old bucket set aside stays there, named."""
    api = FakeEntityApi()
    _deployment(tmp_path, api)
    home = bucket_for("device-3", 4)
    set_aside(api, home)
    _use(monkeypatch, tmp_path, api)
    assert migrate_state.cli(_main_argv(tmp_path, "--to-buckets", "3")) == 1
    (named,) = [line for line in capsys.readouterr().out.splitlines() if f"bucket {home} keeps" in line]
    assert field in named and "device-3" in named, named
    assert field in api.states[home]  # kept where it was


class _Response:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def __enter__(self) -> _Response:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self) -> bytes:
        return self.body


def test_the_durable_api_reads_an_entity_state_that_is_not_an_object_as_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(migrate_state.urllib.request, "urlopen", lambda *args, **kwargs: _Response(b"[1, 2]"))
    http = migrate_state.DurableHttp(migrate_state.LOCAL_DURABLE_URL, None)
    assert http.read(KIND.name, encode_key("device-2")) == [1, 2]


def test_a_per_key_state_that_is_not_an_object_moves_as_stored_and_is_named() -> None:
    """Not skipped: its bucket holds it as damaged, as the per-key entity did, and the run names it (exit 1)."""
    api = _per_key_deployment()
    api.queued.clear()
    api.states[encode_key("device-2")] = [1, 2]  # type: ignore[assignment]
    keys = {f"device-{i}" for i in range(4)}
    outcome = migrate_state.migrate(api, "mobile", keys, 4, wait_seconds=1)  # type: ignore[arg-type]
    assert outcome.complete and list(outcome.not_upgraded) == ["device-2"]
    assert key_text(api.states[bucket_for("device-2", 4)], "device-2") == "[1,2]"
    assert all(_events(api, f"device-{i}", 4) == 1 for i in (0, 1, 3))


def test_an_export_file_whose_key_names_an_origin_that_is_not_text_is_refused_in_one_line_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    part = {"entity": KIND.name, "buckets": 4, "states": {"k": {"events": 1, "_moved_from": [1]}}, "origins": {}}
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps({"format": "streamingpoc-state-export/1", "sources": {"mobile": part}}))
    _use(monkeypatch, tmp_path, FakeEntityApi())
    LocalLake(tmp_path).create(RECORD_PATH, orjson.dumps({"buckets": {"mobile": 4}}))
    assert migrate_state.cli(_main_argv(tmp_path, "--import", str(path))) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"cannot import {path}: 'mobile': 1 key states name no origin"), line
