"""bench/compare.py's profile split puts each sample where its code lives."""

from __future__ import annotations

from pathlib import Path

from bench.compare import breakdown


def test_profile_samples_go_to_the_innermost_project_or_sdk_frame(tmp_path: Path) -> None:
    root = "/work/app"
    stacks = [
        f"run (/usr/lib/python3.11/threading.py:1);consume ({root}/devhost/kafka/trigger.py:9);poll (x.py:1) 5",
        f"loop ({root}/devhost/runtime/invoker.py:3);process ({root}/functions/processing.py:47);"
        f"process_batch ({root}/shared/validation.py:50);validate_json (site-packages/pydantic/type_adapter.py:9) 7",
        f"to_thread ({root}/devhost/runtime/invoker.py:3);land ({root}/shared/landing/files.py:3);"
        f"encode ({root}/shared/formats.py:1) 4",
        f"decode ({root}/devhost/kafka/events.py:70);"
        "decode_multiple_events (site-packages/azure/functions/kafka.py:263) 3",
        f"apply ({root}/devhost/durable/entity_runtime.py:5);reduce ({root}/shared/state/user_activity.py:3) 2",
        f"signal ({root}/devhost/web/server.py:80);save ({root}/devhost/durable/store.py:60) 6",
        "select (/usr/lib/python3.11/selectors.py:468) 1",
    ]
    samples = tmp_path / "raw.txt"
    samples.write_text("\n".join(stacks) + "\n")
    counts, total = breakdown(samples)
    assert total == 28
    assert counts["Durable extension emulation + entity functions (devhost HTTP API, entities)"] == 6
    assert counts["Kafka extension emulation (devhost)"] == 5
    assert counts["core (validate + transform)"] == 7
    assert counts["lake write (plan, encode, atomic write)"] == 4
    assert counts["Functions SDK conversion (azure.functions)"] == 3
    assert counts["keyed state (shared/state: signals, lookups, reducers; durable client)"] == 2
    assert counts["other Python (event loop, threads, start-up)"] == 1
