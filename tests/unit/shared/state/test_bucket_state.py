"""One ``apply`` makes the same state of a key whatever order its payload's parts (partitions) came in."""

from __future__ import annotations

from typing import Any

import pytest

from shared.state import sensor_stats, user_activity
from shared.state.aggregate import signals_for
from shared.state.bucket_state import adopt, apply, key_state, operate
from shared.state.offsets import Fold

T0 = 1_795_516_200_000
MINUTE = 60_000


def part(topic: str, partition: int, key: str, events: list[list[Any]]) -> dict[str, Any]:
    offsets = [event[0] for event in events]
    return {"topic": topic, "partition": partition, "range": [min(offsets), max(offsets)], "keys": {key: events}}


def folded(fold: Fold, parts: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return key_state(apply(fold, {}, {"parts": parts}).state, key) or {}


def click(offset: int, ms: int) -> list[Any]:
    return [offset, ms, "2xx", 10, False, f"/p{offset}"]


@pytest.mark.parametrize(
    ("fold", "topic", "first", "second"),
    [
        # a user whose clicks are in two partitions of one batch (partitions were added): one session of four
        (
            user_activity.fold,
            "clickstream",
            [click(100, T0), click(101, T0 + 10 * MINUTE)],
            [click(0, T0 + 5 * MINUTE)],
        ),
        # a sensor's reading an hour and a minute later, in another partition: the earlier ones are not late
        (
            sensor_stats.fold,
            "sensors",
            [[7, T0, 1.0, False], [8, T0 + 1, 2.0, False]],
            [[3, T0 + 61 * MINUTE, 3.0, False]],
        ),
    ],
)
def test_a_keys_events_in_two_parts_fold_alike_whichever_part_comes_first(
    fold: Fold, topic: str, first: list[list[Any]], second: list[list[Any]]
) -> None:
    p0, p1 = part(topic, 0, "k", first), part(topic, 1, "k", second)
    assert folded(fold, [p0, p1], "k") == folded(fold, [p1, p0], "k")


def test_a_batch_gives_one_state_whatever_order_its_partitions_were_first_seen_in() -> None:
    def row(partition: int, offset: int, ms: int) -> dict[str, Any]:
        fields = {"status_class": "2xx", "bytes": 10, "is_bot": False, "request_path": "/"}
        fields |= {"userid": 7, "user_known": True}
        return {
            "_topic": "clickstream",
            "_partition": partition,
            "_incarnation": 0,
            "_offset": offset,
            "_event_time": ms,
        } | fields

    p0 = [row(0, 100, T0), row(0, 101, T0 + 10 * MINUTE)]
    p1 = [row(1, 0, T0 + 5 * MINUTE), row(1, 1, T0 + 15 * MINUTE)]
    states = []
    for rows in (p0 + p1, p1 + p0):
        (signal,) = signals_for("clickstream", rows, buckets=1, now_ms=T0 + 20 * MINUTE)
        states.append(folded(user_activity.fold, signal.payload["parts"], "7"))
    assert states[0] == states[1] and states[0]["session"][:3] == [T0, T0 + 15 * MINUTE, 4]


def _tap(offset: int) -> list[Any]:
    return [offset, 1_764_000_000_000 + offset, "tap", "home", "4.3.0", "iOS"]


def _apply(state: dict[str, Any], low: int, high: int, keys: dict[str, Any], owed: list[int] | None = None) -> Any:
    from shared.state.device_activity import fold as device_fold

    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [low, high], "keys": keys}
    return apply(device_fold, state, {"parts": [part | ({"owed": owed} if owed else {})]}).state


def _events(state: dict[str, Any], key: str = "k") -> int:
    return int((key_state(state, key) or {}).get("events", 0))


def _sparse_batches(state: dict[str, Any], count: int) -> dict[str, Any]:
    """``count`` later batches, each with a gap before it: the bucket had no events between them."""
    for n in range(2, 2 + count):
        state = _apply(state, n * 1000, n * 1000 + 99, {"k": [_tap(n * 1000 + 1)]})
    return state


def test_a_refused_apply_is_owed_and_re_applied_once_however_many_signals_come_between() -> None:
    """The bucket refused a batch's apply (its offsets 100..199, k's event at 150); processing then sent what
    it owes (ranges and offsets, no events). Forty sparse batches later (past KEPT_RANGES gaps, which a bucket
    closes), tools.redrive's re-signal of 150 still counts, once."""
    from shared.state.aggregate import Signal, owing

    state = _apply({}, 0, 99, {"k": [_tap(5)]})
    refused = Signal(
        "device_activity",
        "~b0of1",
        "apply",
        {
            "parts": [
                {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [100, 199], "keys": {"k": [_tap(150)]}}
            ]
        },
    )
    (owed_part,) = owing(refused).payload["parts"]
    assert (owed_part["keys"], owed_part["owed"], owed_part["range"]) == ({}, [150], [100, 199])
    state = _apply(state, 100, 199, {}, owed=[150])
    state = _sparse_batches(state, 40)
    before = _events(state)
    state = _apply(state, 150, 150, {"k": [_tap(150)]})  # the re-signal
    assert _events(state) == before + 1 and "_owed" not in state
    state = _apply(state, 150, 150, {"k": [_tap(150)]})  # redrive again (its log was not confirmed)
    assert _events(state) == before + 1


def test_without_what_it_owes_a_bucket_closes_the_gap_and_a_late_re_signal_counts_nothing() -> None:
    """Why owing is needed: the same history with the refused range left a gap."""
    state = _sparse_batches(_apply({}, 0, 99, {"k": [_tap(5)]}), 40)
    before = _events(state)
    assert _events(_apply(state, 150, 150, {"k": [_tap(150)]})) == before


def test_an_offset_applied_before_is_never_owed() -> None:
    """A redelivery that names as owed an offset whose event the bucket applied (an earlier delivery's signal
    went through) leaves it applied: owing it would count it twice."""
    state = _apply({}, 0, 9, {"k": [_tap(5)]})
    state = _apply(state, 0, 9, {}, owed=[5])
    assert "_owed" not in state
    assert _events(_apply(state, 5, 5, {"k": [_tap(5)]})) == 1


def test_an_owed_event_that_comes_with_a_redelivered_batch_counts_once() -> None:
    state = _apply({}, 100, 199, {}, owed=[150])
    state = _apply(state, 100, 199, {"k": [_tap(150)]})  # the batch again, its apply accepted this time
    state = _apply(state, 150, 150, {"k": [_tap(150)]})  # then tools.redrive's re-signal
    assert _events(state) == 1 and "_owed" not in state


def test_while_a_bucket_owes_an_offset_a_redelivery_of_what_it_applied_counts_nothing_again() -> None:
    """What a bucket owes is counted when it comes; the events it applied are not, owed offset or not. A review
    found applied events counted again while the bucket owed anything at their position, and the last applied
    offset (the top of the applied ranges) counted again alone."""
    state = _apply({}, 0, 99, {"k": [_tap(5), _tap(99)]})
    state = _apply(state, 100, 199, {}, owed=[150])  # a refused apply: the bucket owes 150
    assert (_events(state), "_owed" in state) == (2, True)
    state = _apply(state, 0, 99, {"k": [_tap(5), _tap(99)]})  # the first batch redelivered
    assert (_events(state), "_owed" in state) == (2, True)
    state = _apply({}, 0, 199, {"k": [_tap(199)]}, owed=[150])  # applied up to 199, owes 150 below it
    state = _apply(state, 190, 199, {"k": [_tap(199)]})  # redelivered: 199 is the top of the applied ranges
    assert (_events(state), "_owed" in state) == (1, True)
    state = _apply(state, 150, 150, {"k": [_tap(150)]})  # tools.redrive's re-signal of what it owes
    assert (_events(state), "_owed" in state) == (2, False)


def test_a_bucket_owes_at_most_kept_owed_ranges_per_position() -> None:
    from shared.state.bucket_state import KEPT_OWED

    state: dict[str, Any] = {}
    for n in range(KEPT_OWED + 10):
        state = _apply(state, n * 10, n * 10 + 9, {}, owed=[n * 10 + 5])
    (owed,) = state["_owed"].values()
    assert len(owed) == KEPT_OWED and owed[-1] == [(KEPT_OWED + 9) * 10 + 5] * 2


def _device_keys(count: int) -> list[str]:
    """Device ids as long as the model allows (``apply`` does not check that a key hashes to its bucket)."""
    return [f"device-{n:0>120}" for n in range(count)]


def test_a_full_bucket_evicts_the_keys_updated_least_recently_and_stays_under_its_bound() -> None:
    """A review's case: 1,000 devices seen once long ago fill one of mobile's 512 buckets past what the Durable
    Task Scheduler holds (256 KB), and nothing ever removed a key. Now the bucket stays under MAX_BUCKET_BYTES:
    the keys updated least recently go first (one updated again lately is kept), never one the operation updates."""
    import json

    import orjson

    from devhost.durable.table_store import MAX_STORED_BYTES, stored_bytes
    from shared.state.bucket_state import EVICTED, KEEP_BUCKET_BYTES, MAX_BUCKET_BYTES
    from shared.state.device_activity import fold as device_fold

    keys = _device_keys(1_000)
    state: dict[str, Any] = {}
    evicted = 0
    for offset, key in enumerate(keys):
        if offset == 500:  # the first key, updated again: now among the most recent
            state = _apply(state, 10_000, 10_000, {keys[0]: [_tap(10_000)]})
        part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [offset, offset]}
        outcome = apply(device_fold, state, {"parts": [part | {"keys": {key: [_tap(offset)]}}]})
        state, evicted = orjson.loads(orjson.dumps(outcome.state)), evicted + outcome.evicted
        assert outcome.size is None or outcome.size <= MAX_BUCKET_BYTES
        assert key_state(state, key) is not None  # the key it updated is never evicted
    size = len(json.dumps(state))  # as the entity SDK stores it
    assert KEEP_BUCKET_BYTES - 2_000 < size <= MAX_BUCKET_BYTES < 256 * 1024
    assert stored_bytes(json.dumps(state)) < MAX_STORED_BYTES  # what the local Table store takes
    assert evicted == state[EVICTED] > 0
    held = list(state["keys"])
    assert key_state(state, keys[0]) is not None and key_state(state, keys[1]) is None
    assert held == sorted(held, key=lambda key: 500 if key == keys[0] else keys.index(key))  # least recent first


def test_a_bucket_far_from_its_bound_is_not_measured() -> None:
    outcome = apply(user_activity.fold, {}, {"parts": [{"topic": "c", "partition": 0, "range": [0, 0], "keys": {}}]})
    assert (outcome.size, outcome.evicted) == (None, 0)


def test_a_bucket_heavy_with_bookkeeping_is_measured() -> None:
    """What a bucket owes and has applied counts toward its size, not only its keys: 32 partitions in two lives,
    each owing many offsets, and 150 keys."""
    import json

    from shared.state.bucket_state import KEPT_OWED, MAX_BUCKET_BYTES
    from shared.state.device_activity import fold as device_fold

    state = _apply({}, 0, 149, {f"device-{i:05d}": [_tap(i)] for i in range(150)})
    for life in (0, 1):
        parts = [
            {"topic": "mobile", "partition": p, "incarnation": life, "range": [10_000_000, 10_001_000], "keys": {}}
            | {"owed": list(range(10_000_000, 10_000_512, 2))}
            for p in range(32)
        ]
        state = apply(device_fold, state, {"parts": parts}).state
    assert all(len(ranges) == KEPT_OWED for ranges in state["_owed"].values())
    outcome = apply(
        device_fold,
        state,
        {"parts": [{"topic": "mobile", "partition": 0, "range": [150, 150]} | {"keys": {"device-x": [_tap(150)]}}]},
    )
    assert outcome.size == len(json.dumps(outcome.state)) and outcome.size <= MAX_BUCKET_BYTES  # as the SDK stores it


def test_a_bucket_whose_updated_keys_alone_are_over_its_bound_evicts_every_other_key_then_some_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Evicting every other key cannot bring it under its bound: those go first, all of them, then the operation's
    own keys in the bucket's order until it is under the bound, counted and logged as every eviction is (it used to
    evict nothing, and keep a state no backend stores)."""
    import json

    import orjson

    from shared.state.bucket_state import EVICTED, MAX_BUCKET_BYTES
    from shared.state.device_activity import fold as device_fold

    state = _apply({}, 0, 99, {f"cold{i}": [_tap(i)] for i in range(100)})
    for name in ("hot0", "hot1", "hot2"):
        state["keys"][name] = orjson.dumps({"events": 1, "pad": "x" * 90_000}).decode()
    part = {
        "topic": "mobile",
        "partition": 0,
        "range": [100, 102],
        "keys": {f"hot{i}": [_tap(100 + i)] for i in range(3)},
    }
    outcome = apply(device_fold, state, {"parts": [part]})
    assert list(outcome.state["keys"]) == ["hot1", "hot2"] and outcome.evicted == 101 == outcome.state[EVICTED]
    assert outcome.size == len(json.dumps(outcome.state)) <= MAX_BUCKET_BYTES
    assert outcome.state["_applied"] == {"mobile/0/0": [[0, 102]]}  # hot0's event stays applied: never counted twice
    assert "the keys its operation updated are over 240000 alone; evicted 1 of them too" in caplog.text
    assert "['hot0']" in caplog.text


def test_a_bucket_whose_operations_each_update_more_than_its_bound_does_not_grow_without_end() -> None:
    """A review's case: each operation's own keys were over the bound alone, so nothing was ever evicted, not even
    the keys the operation did not touch (9,000 keys, 3.2 MB after six operations of 1,500 keys)."""
    import json

    from shared.state.bucket_state import MAX_BUCKET_BYTES, operate
    from shared.state.registry import ENTITY_KINDS

    kind = ENTITY_KINDS["users"]
    state: dict[str, Any] = {}
    per_op = 1_500  # ~300 B a key as the bucket holds it: each operation's own keys are ~450 KB
    for op in range(6):
        first = op * per_op
        profile: dict[str, Any] = {"username": "u" * 40, "first_name": "f" * 40, "last_name": "l" * 40}
        profile |= {"city": "c" * 20, "level": "gold", "registered_at": T0}
        keys = {f"user-{first + i}": [[first + i, T0, profile]] for i in range(per_op)}
        part = {"topic": "users", "partition": 0, "incarnation": 0, "range": [first, first + per_op - 1], "keys": keys}
        state = operate(kind.fold, kind.reduce, "~b0of1", state, "apply", {"parts": [part]}).state
    # at most the last operation's keys remain: the untouched ones are what eviction is for
    assert len(state["keys"]) <= per_op, f"{len(state['keys']):,} keys, {len(json.dumps(state)):,} bytes"
    assert len(json.dumps(state)) <= MAX_BUCKET_BYTES and all(int(key[5:]) >= 5 * per_op for key in state["keys"])


def test_a_bucket_of_non_latin_text_stays_under_its_bound_as_the_sdk_stores_it() -> None:
    """A review's case: the bound was measured in orjson's UTF-8 bytes, but the entity SDK stores ``json.dumps``
    (ASCII-escaped: a Cyrillic letter is 2 bytes of UTF-8, 6 escaped), so a bucket of Cyrillic profiles evicted at
    ~216 KB by its measure and was ~458 KB as stored, past the Durable Task Scheduler's 256 KB."""
    import json

    from shared.state.bucket_state import EVICTED, MAX_BUCKET_BYTES
    from tests.unit.functions.test_entities import HANDLERS

    def apply_through_sdk(state: dict[str, Any] | None, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
        context = {
            "self": {"name": "user_profile", "key": "~b0of1"},
            "state": None if state is None else json.dumps(state),
            "exists": state is not None,
            "batch": [{"name": "apply", "input": json.dumps(json.dumps(payload))}],
        }
        result = json.loads(HANDLERS["user_profile"](json.dumps(context)))
        assert not result["results"][0]["isError"], result["results"]
        stored = result["entityState"]  # what the host persists for the entity
        return json.loads(stored), stored

    name = "Александра" * 4
    state: dict[str, Any] | None = None
    offset, stored = 0, ""
    for batch in range(20):  # 1,000 users into one bucket: past the bound, so the bucket evicts
        keys = {}
        for i in range(50):
            profile = {"username": name, "first_name": name, "last_name": name, "city": "Санкт-Петербург"}
            keys[f"user-{batch}-{i}"] = [[offset, T0, profile | {"level": "gold", "registered_at": T0}]]
            offset += 1
        part = {"topic": "users", "partition": 0, "incarnation": 0, "range": [offset - 50, offset - 1], "keys": keys}
        state, stored = apply_through_sdk(state, {"parts": [part]})
    assert state is not None and state.get(EVICTED)  # the bound was reached and enforced
    assert len(stored.encode()) <= MAX_BUCKET_BYTES, f"stored {len(stored.encode()):,} bytes"


@pytest.mark.parametrize(
    "text",
    ["plain ascii, with: separators", "Санкт-Петербург", "東京都", "emoji \U0001f600 and \u00e9", 'q"b\\s\x7f\x00\n'],
    ids=["ascii", "cyrillic", "cjk", "outside-the-bmp", "escaped"],
)
def test_stored_size_is_the_length_of_the_sdks_json_for_a_buckets_keys(text: str) -> None:
    import json

    import orjson

    from shared.state.bucket_state import stored_size

    keys = {f"{text}-{i}": orjson.dumps({"name": text, "n": [i, text]}).decode() for i in range(3)}
    assert stored_size({"keys": keys}) == len(json.dumps({"keys": keys}))
    state = {"keys": keys, "_applied": {"users/0/0": [[0, 5], [7, 9]]}, "_evicted": 3}
    assert stored_size(state) == len(json.dumps(state))
    assert stored_size({"keys": {}, "_unreadable": {"k": text}}) >= len(
        json.dumps({"keys": {}, "_unreadable": {"k": text}})
    )


def test_stored_size_bounds_a_damaged_bucket_whose_key_states_are_arrays_or_objects() -> None:
    """A review's case: measured as if each key state were text, ``[0, 0, 0]`` counted as orjson's ``[0,0,0]``."""
    import json

    from shared.state.bucket_state import stored_size

    state = {"keys": {"a": [0, 0, 0], "b": {"x": 1, "y": 2}}}
    assert stored_size(state) >= len(json.dumps(state))


def test_a_damaged_bucket_of_array_key_states_is_kept_under_its_bound_as_the_sdk_stores_it() -> None:
    """A review's case: 100 key states damaged outside this code (JSON arrays, not text), ~201 KB by orjson and
    ~301 KB as stored: the apply measured 201,475 bytes, evicted nothing and left a state no backend stores."""
    import json

    from shared.state.bucket_state import MAX_BUCKET_BYTES
    from shared.state.device_activity import fold as device_fold

    state: dict[str, Any] = {"keys": {f"old{i}": [0] * 1000 for i in range(100)}}
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [1, 1], "keys": {"k": [_tap(1)]}}
    outcome = apply(device_fold, state, {"parts": [part]})
    stored = len(json.dumps(outcome.state))
    assert stored <= MAX_BUCKET_BYTES, f"stored {stored:,} bytes, measured {outcome.size}, evicted {outcome.evicted}"
    assert outcome.evicted and outcome.size is not None and outcome.size >= stored


def test_an_apply_to_a_bucket_holding_a_lone_surrogate_key_does_not_raise() -> None:
    """A review's case: ``json.loads`` (the SDK's) takes ``"\\ud800"``, so a damaged stored state may hold such a key.
    A bucket of more than 64 keys is serialised with orjson on every apply, which refused it: every later operation
    on the bucket failed."""
    import json

    from shared.state.device_activity import fold as device_fold

    state = json.loads(json.dumps({"keys": {f"k{i}": '{"events": 1}' for i in range(64)} | {"bad\ud800": "{}"}}))
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [1, 1], "keys": {"k": [_tap(1)]}}
    outcome = apply(device_fold, state, {"parts": [part]})
    assert outcome.size is not None and outcome.size >= len(json.dumps(outcome.state))


def test_a_bucket_over_its_bound_with_damage_orjson_refuses_evicts_under_it() -> None:
    """Lone surrogates in keys and in key states, integers past 64 bits, floats json.dumps writes longer
    (``1e-05``, ``Infinity``): the bucket is measured and evicted as the SDK stores it, and nothing raises."""
    import json

    from shared.state.bucket_state import MAX_BUCKET_BYTES
    from shared.state.device_activity import fold as device_fold

    keys: dict[str, Any] = {f"old{i}\ud800": '{"events": 1, "pad": "' + "\udfff" * 500 + '"}' for i in range(100)}
    keys |= {f"big{i}": [2**70] * 200 for i in range(100)}
    state: dict[str, Any] = {"keys": keys, "_kept_elsewhere": [1e-05, float("inf"), float("nan")] * 300}
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [1, 1], "keys": {"k": [_tap(1)]}}
    outcome = apply(device_fold, state, {"parts": [part]})
    stored = len(json.dumps(outcome.state))
    assert outcome.evicted and outcome.size is not None and outcome.size >= stored and stored <= MAX_BUCKET_BYTES


def _damaged_text(rng: Any) -> str:
    """Text of any character a stored state may hold: ASCII (separators, quotes, backslashes), control characters,
    DEL, the BMP, outside it, lone surrogates."""
    pools = [
        'ab:, {}[]"\\/0123456789.eE-+',
        "".join(map(chr, range(0x20))) + "\x7f",
        "éЖ東\u2028\ufeff\u0080",
        "\U0001f600\U0010ffff",
        "\ud800\udbff\udc00\udfff",
    ]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randrange(0, 12)))


def _damaged_value(rng: Any, depth: int = 0) -> Any:
    """Any value ``json.loads`` gives (floats and NaN, integers of any size, nested objects and arrays)."""
    kind = rng.randrange(9 if depth < 3 else 7)
    if kind == 0:
        return _damaged_text(rng)
    if kind == 1:
        return rng.choice([0, -1, 7, 2**53, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 2**200, -(10**100)])
    if kind == 2:
        special = [1e-05, 1e-07, 1e15, 1e16, 1e22, 0.1, -0.0, 5e-324, 1.7976931348623157e308]
        return rng.choice([*special, float("nan"), float("inf"), float("-inf"), rng.uniform(-1e6, 1e6)])
    if kind == 3:
        return rng.choice([True, False, None])
    if kind in (4, 5, 6):
        return _damaged_text(rng) if kind != 6 else "{" + _damaged_text(rng) + "}"
    if kind == 7:
        return [_damaged_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))]
    return {_damaged_text(rng): _damaged_value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}


def _damaged_state(rng: Any) -> dict[str, Any]:
    """A bucket's state as an entity may hold it, damaged outside this code in any way ``json.loads`` allows."""
    count = rng.choice([0, 1, 3, 64, 65, 150])
    if rng.random() < 0.5:  # key states as this code writes them, bar a few
        keys: Any = {_damaged_text(rng) + str(i): '{"events": 1}' for i in range(count)}
        for key in rng.sample(list(keys), min(len(keys), rng.randrange(0, 3))):
            keys[key] = _damaged_value(rng)
    else:
        keys = {_damaged_text(rng) + str(i): _damaged_value(rng) for i in range(count)}
    state: dict[str, Any] = {"keys": keys if rng.random() < 0.9 else _damaged_value(rng)}
    if rng.random() < 0.7:
        state["_applied"] = {"mobile/0/0": [[0, rng.randrange(10**6)]], "mobile/1/0": [[0, 5], [7, 9]]}
    for _ in range(rng.randrange(0, 4)):
        state[rng.choice(["_evicted", "_unreadable", "_refused", "_origins", "_owed", _damaged_text(rng)])] = (
            _damaged_value(rng)
        )
    if rng.random() < 0.05:  # nested deeper than orjson writes (254)
        deep: Any = 0
        for _ in range(300):
            deep = [deep]
        state["_deep"] = deep
    return state


@pytest.mark.parametrize("seed", range(8))
def test_stored_size_bounds_every_state_an_entity_can_hold_and_never_raises(seed: int) -> None:
    """``stored_size`` and the bound that spares measuring a small bucket (``_most_bytes``) are never under what the
    SDK stores (``json.dumps``), for states damaged in every way ``json.loads`` allows, and never raise."""
    import json
    import random

    from shared.state import bucket_state
    from shared.state.bucket_state import stored_size

    rng = random.Random(seed)
    for _ in range(250):
        state = _damaged_state(rng)
        stored = len(json.dumps(state))
        assert stored_size(state) >= stored, repr(state)[:500]
        assert stored_size(json.loads(json.dumps(state))) >= stored  # as the SDK reads it back
        keys = state["keys"]
        if isinstance(keys, dict) and bucket_state._most_bytes(keys) < bucket_state.MAX_BUCKET_BYTES:
            assert bucket_state._most_bytes(keys) >= len(json.dumps(keys)), repr(keys)[:500]


@pytest.mark.parametrize("damaged", [["7", "8"], "abc", 5])
def test_a_bucket_whose_key_states_are_not_an_object_sets_them_aside_and_counts_afresh(
    damaged: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Damaged outside this code, every apply to it raised, so no event of its keys counted again, silently to the
    sender of a signal. Its key states are kept to read, and its keys counted afresh from the operation on."""
    from shared.state.bucket_state import UNREADABLE_KEYS, is_bucket_state

    state = {"keys": damaged, "_applied": {"clickstream/0/0": [[0, 3]]}}
    outcome = apply(user_activity.fold, state, {"parts": [part("clickstream", 0, "7", [click(4, T0), click(5, T0)])]})
    assert is_bucket_state(outcome.state) and outcome.refused is None
    assert (key_state(outcome.state, "7") or {}).get("page_views") == 2
    assert outcome.state[UNREADABLE_KEYS] == (damaged if isinstance(damaged, str) else repr(damaged))
    assert outcome.state["_applied"] == {"clickstream/0/0": [[0, 5]]}, "what it applied before still counts"
    assert "not an object of key states" in caplog.text


def test_an_adopt_into_a_bucket_whose_key_states_are_not_an_object_sets_them_aside_as_apply_does() -> None:
    """An import into the recorded N sends adopts without a run to replace by: the damaged bucket raised on every
    one, so the migration never completed."""
    from shared.state.bucket_state import UNREADABLE_KEYS, adopt, is_bucket_state

    state: dict[str, Any] = {"keys": [["7", "{}"]], "_applied": {"clickstream/0/0": [[0, 3]]}}
    assert adopt(state, {"states": {"8": {"page_views": 1}}}) == []
    assert is_bucket_state(state) and key_state(state, "8") == {"page_views": 1}
    assert state[UNREADABLE_KEYS] == repr([["7", "{}"]])


@pytest.mark.parametrize("damaged", [[["7", "{}"]], "text"])
def test_the_migration_reads_a_bucket_whose_key_states_are_not_an_object_as_holding_no_keys(damaged: Any) -> None:
    """tools.migrate_state reads every bucket: one damaged bucket stopped the whole move with a traceback."""
    from shared.state.migration import unbucketed

    buckets = {"~b0of2": {"keys": damaged}, "~b1of2": {"keys": {"9": '{"page_views": 1}'}}}
    states, _ = unbucketed(buckets)
    assert set(states) == {"9"}


@pytest.mark.parametrize(
    ("field", "damaged"),
    [
        ("_applied", ["x"]),
        ("_applied", {"clickstream/0/0": "x"}),
        ("_applied", {"clickstream/0/0": [[1]]}),
        ("_owed", []),
        ("_owed", {"clickstream/0/0": "x"}),
        ("_offsets", "x"),
        ("_refused", []),
        ("_origins", "x"),
        ("_evicted", "many"),
    ],
)
def test_a_bucket_whose_bookkeeping_is_damaged_sets_it_aside_and_counts_on(
    field: str, damaged: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Review 15: damaged outside this code, a bookkeeping field of the wrong shape made every operation on the
    bucket raise, for good: every later event of its keys was lost, silently to the signal's sender. It is set
    aside to read, as damaged key states are, and the operation applies."""
    from shared.state.bucket_state import UNREADABLE_BOOKKEEPING, operate

    state: dict[str, Any] = {"keys": {}, field: damaged}
    payload = {"parts": [part("clickstream", 0, "7", [click(4, T0), click(5, T0)])]}
    outcome = operate(user_activity.fold, user_activity.reduce, "~b0of4", state, "apply", payload)
    assert outcome.refused is None and (key_state(outcome.state, "7") or {}).get("page_views") == 2
    assert outcome.state[UNREADABLE_BOOKKEEPING] == {field: repr(damaged)}
    assert outcome.state["_applied"] == {"clickstream/0/0": [[4, 5]]}
    assert "not of its shape" in caplog.text


def test_a_bucket_state_that_is_not_an_object_is_kept_to_read_and_the_bucket_counts_afresh() -> None:
    from shared.state.bucket_state import UNREADABLE_BOOKKEEPING, operate

    payload = {"parts": [part("clickstream", 0, "7", [click(4, T0)])]}
    outcome = operate(user_activity.fold, user_activity.reduce, "~b0of4", [1, 2], "apply", payload)  # type: ignore[arg-type]
    assert outcome.refused is None and (key_state(outcome.state, "7") or {}).get("page_views") == 1
    assert outcome.state[UNREADABLE_BOOKKEEPING] == {"state": "[1, 2]"}


@pytest.mark.parametrize(
    ("operation", "payload", "named"),
    [
        ("apply", {"parts": [part("clickstream", 0, "7", [click(4, T0)]) | {"owed_v2": [4]}]}, "parts[].owed_v2"),
        ("apply", {"parts": [part("clickstream", 0, "7", [click(4, T0)])], "v": 2}, "'v'"),
        ("apply", {"parts": "all"}, "not a list of objects"),
        ("adopt", {"states": {}, "keep": True}, "'keep'"),
        ("compact", {}, "no operation 'compact'"),
        ("apply", [1], "not an object"),
    ],
)
def test_an_operation_a_newer_version_sent_is_refused_whole_not_applied_without_what_it_adds(
    operation: str, payload: Any, named: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Review 17 (rolling deploys): old and new workers share the task hub, so a worker may run an operation a newer
    processing version sent. A part field it did not know (as ``owed`` and ``holes`` once were) was ignored and the
    part's range marked applied: an event that field held back was never counted. Refused whole now: nothing
    applied, nothing marked, the refusal names the fields."""
    from shared.state.bucket_state import operate

    state: dict[str, Any] = {"keys": {"7": '{"page_views": 3}'}, "_applied": {"clickstream/0/0": [[0, 3]]}}
    before = {"keys": dict(state["keys"]), "_applied": {"clickstream/0/0": [[0, 3]]}}
    outcome = operate(user_activity.fold, user_activity.reduce, "~b0of4", state, operation, payload)
    assert outcome.refused is not None and named in outcome.refused
    assert outcome.state == before
    assert "refused" in caplog.text


def test_an_adopt_whose_origin_the_bucket_holds_with_other_ranges_is_a_conflict() -> None:
    """A move adopts an old bucket's skip ranges once: the same origin again with other ranges is named, not
    silently kept (the moved keys would skip or count offsets again)."""
    state: dict[str, Any] = {}
    assert adopt(state, {"states": {}, "origins": {"~b0of2": {"mobile/0/0": [[0, 9]]}}}) == []
    assert adopt(state, {"states": {}, "origins": {"~b0of2": {"mobile/0/0": [[0, 5]]}}}) == ["origin ~b0of2"]


def test_an_inverted_range_is_refused_and_changes_nothing() -> None:
    from shared.state.registry import ENTITY_KINDS

    kind = ENTITY_KINDS["mobile"]
    state = {"keys": {}, "_applied": {"mobile/0/0": [[0, 9]]}}
    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [30, 20], "keys": {}}
    out = operate(kind.fold, kind.reduce, "~b0of1", state, "apply", {"parts": [part]})
    assert out.refused and out.state["_applied"] == {"mobile/0/0": [[0, 9]]}


def _apply_part(state: dict[str, Any], low: int, high: int, keys: dict[str, Any], **extra: Any) -> Any:
    from shared.state.device_activity import fold as device_fold

    part = {"topic": "mobile", "partition": 0, "incarnation": 0, "range": [low, high], "keys": keys} | extra
    return apply(device_fold, state, {"parts": [part]}).state


@pytest.mark.parametrize("late", ["a later signal first", "an earlier signal delivered again first"])
def test_a_ledger_holes_gap_stays_open_for_signals_that_do_not_carry_it(late: str) -> None:
    """A review's fuzz: a consumer group moved over 10..19, and later signals carried that hole, so its gap stayed
    open past 32 ranges; but a signal without it (sent after the rewind landed the hole, overtaking the rewind's,
    or one from before the hole, delivered again) closed it at once, and the rewind's events were not counted.
    The bucket now keeps the hole until it is applied."""
    state = _apply_part({}, 0, 9, {"k": [_tap(5)]})
    first_signal = (0, 9, {"k": [_tap(5)]})
    for n in range(2, 42):  # 40 ranges apart, each signal telling the hole
        state = _apply_part(state, n * 20, n * 20 + 9, {"k": [_tap(n * 20)]}, holes=[[10, 19]])
    if late == "a later signal first":
        state = _apply_part(state, 900, 909, {"k": [_tap(900)]})
    else:
        state = _apply_part(state, *first_signal)
    counted = _events(state)
    state = _apply_part(state, 10, 19, {"k": [_tap(offset) for offset in range(10, 20)]})  # the rewind
    assert _events(state) == counted + 10
    assert "_holes" not in state  # applied: nothing kept for it


class _Landed:
    """Clickstream batches landed through the real ledger, and the signals processing sends one bucket for them."""

    def __init__(self, key: str = "alice", buckets: int = 4) -> None:
        from shared.landing.ledger import Ledger
        from shared.state.buckets import bucket_for

        self.key, self.buckets, self.ledger = key, buckets, Ledger.first()
        self.bucket = bucket_for(key, buckets)
        self.other = next(k for k in (f"k{n}" for n in range(100)) if bucket_for(k, buckets) != self.bucket)

    def payloads(self, low: int, high: int, key: str) -> list[dict[str, Any]]:
        from shared.records import OffsetSpan, TopicPartition
        from shared.state.aggregate import with_holes, within_size

        rows = [
            {"_topic": "clickstream", "_partition": 0, "_incarnation": 0, "_offset": offset,
             "_event_time": T0 + offset * 1000, "status_class": "2xx", "bytes": 1, "is_bot": False,
             "request_path": "/x", "userid": key, "user_known": True, "ip": "1.1.1.1"}
            for offset in range(low, high + 1)
        ]  # fmt: skip
        spans = {TopicPartition("clickstream", 0): OffsetSpan(low, high)}
        found = signals_for("clickstream", rows, spans, buckets=self.buckets)
        holes = self.ledger.holes(0)
        sent = within_size(with_holes(found, {("clickstream", 0, 0): holes} if holes else {}))
        self.ledger.mark_landed(low, high, 0)
        return [signal.payload for signal in sent if signal.key == self.bucket]

    def page_views(self, payloads: list[dict[str, Any]]) -> int:
        state: dict[str, Any] = {}
        for payload in payloads:
            state = apply(user_activity.fold, state, payload).state
        return int((key_state(state, self.key) or {})["page_views"])


def test_commit_markers_among_a_ledgers_holes_do_not_push_out_the_hole_a_rewind_lands() -> None:
    """The review of the change above, with the real ledger and signals: the ledger reports commit markers (single
    offsets no record holds) among its holes; kept newest first, 16 of them pushed 10..19 out while the ledger still
    had it, and a later signal that carried only markers closed its gap before the rewind's signal came."""
    landed = _Landed()
    before = landed.payloads(0, 9, landed.key)
    landed.ledger.pass_over(10, 19, 0)  # the group moved over 10..19
    between, low = [], 20
    for n in range(2, 80):
        between += landed.payloads(low, low + 8, landed.key if n % 2 == 0 else landed.other)
        if n < 40:  # a commit marker after each of these batches
            landed.ledger.pass_over(low + 9, low + 9, 0)
        low += 10 if n < 40 else 9
    rewind = landed.payloads(10, 19, landed.key)
    after = landed.payloads(low, low + 8, landed.key)
    # the rewind's signal overtaken by the next one: before, between, rewind, after all counted
    assert landed.page_views([*before, *between, *after, *rewind]) == 10 + 39 * 9 + 10 + 9


def test_rewinds_that_split_passed_over_ranges_keep_every_piece_open() -> None:
    """The third review: rewinds landing parts of 8 passed-over ranges split them into 24, all of which the ledger
    reports; kept 16, a piece dropped was closed by a signal that overtook the rewind landing it."""
    landed = _Landed()
    signals, low, bases = landed.payloads(0, 9, landed.key), 10, []
    for _ in range(8):  # 8 ten-offset holes, the ledger's most
        landed.ledger.pass_over(low, low + 9, 0)
        bases.append(low)
        signals += landed.payloads(low + 10, low + 14, landed.key)
        low += 15
    for n in range(100):  # over 32 ranges in the bucket
        signals += landed.payloads(low, low + 4, landed.key if n % 2 == 0 else landed.other)
        low += 5
    for base in bases:  # rewinds land offsets 3 and 6 of each hole: 24 pieces left
        signals += landed.payloads(base + 3, base + 3, landed.key) + landed.payloads(base + 6, base + 6, landed.key)
    assert len(landed.ledger.holes(0)) > 16
    signals += landed.payloads(low, low + 4, landed.key)
    rewind = landed.payloads(bases[0], bases[0] + 2, landed.key)
    after = landed.payloads(low + 5, low + 9, landed.key)
    assert landed.page_views([*signals, *after, *rewind]) == landed.page_views([*signals, *rewind, *after])
