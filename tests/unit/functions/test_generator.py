"""The generate_<source> timers' progress in the lake, with the broker replaced by a recording send: what a tick
reads and writes, and what it sends when reads fail, formats differ, sends fail or other instances run too."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from functions import bindings
from functions import generator as generator_functions
from shared import kafka_clients
from shared import settings as settings_module
from shared.errors import LakeError, TransientError, UnreadableLakeFile
from shared.lake import LocalLake
from tests.unit.functions.conftest import user_function

FIRST = SimpleNamespace(retry_context=None)


def _retry(count: int) -> Any:
    return SimpleNamespace(retry_context=SimpleNamespace(retry_count=count, max_retry_count=-1))


class _Sends:
    """``kafka_clients.send`` as the generator calls it: records each attempt, fails the ones it is told to."""

    def __init__(self) -> None:
        self.attempts: list[list[tuple[str | None, bytes]]] = []
        self.fail_next = 0

    def __call__(self, _config: Any, topic: str, records: Any) -> None:
        self.attempts.append([(record.key, record.value) for record in records])
        if self.fail_next:
            self.fail_next -= 1
            raise TransientError(f"{topic}: 0 failed, 2 unacknowledged of {len(records)}: timed out")

    @property
    def values(self) -> list[bytes]:
        return [value for attempt in self.attempts for _, value in attempt]


@pytest.fixture
def sends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sends]:
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setattr(generator_functions, "_delivered", {})
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    recorder = _Sends()
    monkeypatch.setattr(kafka_clients, "send", recorder)
    yield recorder
    for cached in caches:
        cached.cache_clear()


def _restart(monkeypatch: pytest.MonkeyPatch, process: str) -> None:
    """Another worker process: its own id, and no memory of what the first one delivered."""
    monkeypatch.setattr(generator_functions, "PROCESS_ID", process)
    monkeypatch.setattr(generator_functions, "_delivered", {})


def _progress(tmp_path: Path, source: str) -> dict[str, Any]:
    return dict(json.loads((tmp_path / "_generator" / f"{source}.json").read_text()))


class _CountingLake(LocalLake):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.calls: list[str] = []

    def read(self, path: str) -> bytes:
        self.calls.append("read")
        return super().read(path)

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        self.calls.append("read_versioned")
        return super().read_versioned(path)

    def write_atomic(self, path: str, data: bytes) -> None:
        self.calls.append("write_atomic")
        super().write_atomic(path, data)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        self.calls.append("write_if")
        return super().write_if(path, data, version)


def test_a_tick_reads_and_writes_its_progress_once(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    counting = _CountingLake(tmp_path)
    monkeypatch.setattr(generator_functions, "lake", lambda: counting)
    generate = user_function("generate_sensors")
    for _ in range(3):
        counting.calls.clear()
        generate(timer=None, context=FIRST)
        assert counting.calls == ["read_versioned", "write_if"]  # the steady state: one read, one conditional write
    assert _progress(tmp_path, "sensors")["sent"] == 200 and len(sends.attempts) == 3


def test_a_failed_read_of_the_progress_raises_and_does_not_restart_a_finished_run(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any failure but "no such file" (here a 403) used to count as "nothing sent yet": the run began again."""
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "14")
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    generate = user_function("generate_sensors")
    for _ in range(3):
        generate(timer=None, context=FIRST)  # 7, 7, then the run is complete
    assert len(sends.values) == 14
    failures = iter([LakeError("read _generator/sensors.json: not authorised (AuthorizationFailure)")])
    real = LocalLake.read_versioned

    def flaky(self: LocalLake, path: str) -> tuple[bytes, str] | None:
        for error in failures:
            raise error
        return real(self, path)

    monkeypatch.setattr(LocalLake, "read_versioned", flaky)
    with pytest.raises(LakeError, match="not authorised"):
        generate(timer=None, context=FIRST)
    for retry in range(1, 4):
        generate(timer=None, context=_retry(retry))
    assert len(sends.values) == 14, f"{len(sends.values) - 14} records sent again after one failed read"


@pytest.mark.parametrize(
    ("content", "why"),
    [('{"version": 2, "next_index": 500}', "format version 2"), ('{"sent": 500, "pend', "not JSON")],
)
def test_progress_this_version_cannot_read_is_refused_naming_the_file_and_nothing_is_sent(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, why: str
) -> None:
    """A newer version's progress read after a rollback, or a damaged file, is not "nothing sent yet"."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    (tmp_path / "_generator").mkdir()
    (tmp_path / "_generator" / "sensors.json").write_text(content)
    with pytest.raises(UnreadableLakeFile, match=why) as raised:
        user_function("generate_sensors")(timer=None, context=FIRST)
    assert str(raised.value).startswith("_generator/sensors.json: ")
    assert not sends.attempts
    assert (tmp_path / "_generator" / "sensors.json").read_text() == content


def test_the_retry_of_an_unseeded_config_source_sends_the_same_records(
    sends: _Sends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Datagen config without random.seed keeps its progress; its retry used to regenerate the tick's fields."""
    monkeypatch.setenv("ORDERS_GENERATOR_EVENTS_PER_TICK", "5")
    monkeypatch.delenv("ORDERS_GENERATOR_SEED", raising=False)
    generate = user_function("generate_orders")
    sends.fail_next = 1  # the broker acknowledged some of them, then the send timed out
    with pytest.raises(TransientError):
        generate(timer=None, context=_retry(0))
    generate(timer=None, context=_retry(1))
    first, retry = sends.attempts
    assert [json.loads(value)["orderid"] for _, value in first] == [0, 1, 2, 3, 4]
    assert retry == first
    generate(timer=None, context=FIRST)
    assert [json.loads(value)["orderid"] for _, value in sends.attempts[2]] == [5, 6, 7, 8, 9]


def test_a_tick_that_loses_the_progress_to_another_instance_sends_nothing_and_does_not_raise(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances of the timer read the same progress: the one whose conditional write loses skips its tick
    (raising would have its retry send too); the first wrote last used to win, and both sent."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    generate = user_function("generate_sensors")
    generate(timer=None, context=FIRST)
    other = LocalLake(tmp_path)
    real = LocalLake.read_versioned

    def read_then_other_instance_writes(self: LocalLake, path: str) -> tuple[bytes, str] | None:
        found = real(self, path)
        assert found is not None
        progress = json.loads(found[0])
        progress["pending"]["owner"] = "other"  # e.g. the other instance's resend, recorded acknowledged
        progress["pending"]["acknowledged"] = True
        other.write_if(path, json.dumps(progress).encode(), found[1])
        return found

    monkeypatch.setattr(LocalLake, "read_versioned", read_then_other_instance_writes)
    generate(timer=None, context=FIRST)
    assert len(sends.attempts) == 1
    assert _progress(tmp_path, "sensors")["pending"]["owner"] == "other"  # not overwritten


def test_a_tick_another_process_left_pending_is_sent_again_once_and_recorded_acknowledged(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two instances ticking in turn (a lost singleton lock): each tick is confirmed only once delivered."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "10")
    generate = user_function("generate_sensors")
    generate(timer=None, context=FIRST)  # A: records 0-9, delivered; A alone knows it
    memory_a = generator_functions._delivered
    _restart(monkeypatch, "B")
    generate(timer=None, context=FIRST)  # B cannot know: sends 0-9 again, then records them acknowledged
    assert sends.attempts[1] == sends.attempts[0]
    assert _progress(tmp_path, "sensors")["pending"]["acknowledged"] is True
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "A")
    monkeypatch.setattr(generator_functions, "_delivered", memory_a)
    generate(timer=None, context=FIRST)  # A: confirmed, records 10-19
    assert _progress(tmp_path, "sensors")["sent"] == 10 and len(set(sends.values)) == 20
    assert len(sends.values) == 30


def test_a_retry_after_another_instance_delivered_the_failed_tick_does_not_send_it_again(
    sends: _Sends, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """C's send fails; A delivers the tick and records it acknowledged; C's retry goes on with the next tick."""
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "10")
    generate = user_function("generate_sensors")
    _restart(monkeypatch, "C")
    sends.fail_next = 1
    with pytest.raises(TransientError):
        generate(timer=None, context=FIRST)
    memory_c = generator_functions._delivered
    _restart(monkeypatch, "A")
    generate(timer=None, context=FIRST)
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "C")
    monkeypatch.setattr(generator_functions, "_delivered", memory_c)
    generate(timer=None, context=_retry(1))
    first, by_a, by_retry = sends.attempts
    assert by_a == first and not set(by_retry) & set(first)
    assert _progress(tmp_path, "sensors")["sent"] == 10
