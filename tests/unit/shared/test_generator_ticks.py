"""The Datagen stand-in: rates, iterations, seeds and the ticks' progress."""

from __future__ import annotations

import pytest

from shared.generator_ticks import generate_messages, needs_progress, plan_tick, tick_size
from shared.settings import load_source_settings
from shared.source_model import record_validator
from shared.sources import SOURCES, get_source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_same_seed_gives_the_same_events(name: str) -> None:
    source = get_source(name)
    first = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=0)
    again = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=0)
    other = generate_messages(source, 20, now=FIXED_NOW, seed=6, start_index=0)
    next_tick = generate_messages(source, 20, now=FIXED_NOW, seed=5, start_index=20)
    assert first == again
    assert first != other
    assert first != next_tick


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_messages_are_keyed_by_entity_and_valid(name: str) -> None:
    source = get_source(name)
    for message in generate_messages(source, 30, now=FIXED_NOW, seed=None, start_index=0):
        event = record_validator(source.model).validate_json(message.value)
        assert message.key == source.entity_key(source.transform(event))


def test_generated_timestamps_are_current() -> None:
    for name in ("clickstream", "mobile", "sensors"):
        source = get_source(name)
        messages = generate_messages(source, 5, now=FIXED_NOW, seed=1, start_index=0)
        times = [source.event_time_ms(record_validator(source.model).validate_json(m.value)) for m in messages]
        assert all(t is not None and FIXED_NOW_MS - 60_000 <= t <= FIXED_NOW_MS for t in times), name


def test_tick_size_follows_rate_iterations_and_switch() -> None:
    settings = load_source_settings(
        "mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40", "MOBILE_GENERATOR_ITERATIONS": "100"}
    )
    assert [tick_size(settings, sent) for sent in (0, 40, 80, 100, 150)] == [40, 40, 20, 0, 0]
    unbounded = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
    assert tick_size(unbounded, 10_000_000) == 40 and not needs_progress(unbounded)
    off = load_source_settings("mobile", {"MOBILE_GENERATOR_ENABLED": "false"})
    assert tick_size(off, 0) == 0
    assert needs_progress(settings)


def test_a_tick_is_saved_as_pending_before_it_is_sent_and_confirmed_by_the_next() -> None:
    settings = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
    first, saved = plan_tick({}, settings, now=FIXED_NOW, owner="a", retrying=False)
    assert (first.start, first.count) == (0, 40) and saved["sent"] == 0 and saved["pending"]["count"] == 40
    retried, _ = plan_tick(saved, settings, now=FIXED_NOW, owner="a", retrying=True)
    assert retried == first  # same records again
    following, confirmed = plan_tick(saved, settings, now=FIXED_NOW, owner="a", retrying=False)
    assert following.start == 40 and confirmed["sent"] == 40


def test_a_pending_tick_another_process_left_is_sent_again() -> None:
    settings = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
    _, saved = plan_tick({}, settings, now=FIXED_NOW, owner="crashed", retrying=False)
    again, resaved = plan_tick(saved, settings, now=FIXED_NOW, owner="new", retrying=False)
    assert (again.start, again.count, again.now) == (0, 40, FIXED_NOW.isoformat()) and resaved["sent"] == 0
    following, _ = plan_tick(resaved, settings, now=FIXED_NOW, owner="new", retrying=False)
    assert following.start == 40


def test_a_tick_resent_by_another_process_is_not_resent_again_when_ticks_alternate() -> None:
    settings = load_source_settings("mobile", {"MOBILE_GENERATOR_EVENTS_PER_TICK": "40"})
    _, saved = plan_tick({}, settings, now=FIXED_NOW, owner="a", retrying=False)
    resent, saved = plan_tick(saved, settings, now=FIXED_NOW, owner="b", retrying=False)
    assert resent.start == 0
    following, saved = plan_tick(saved, settings, now=FIXED_NOW, owner="a", retrying=False)
    assert following.start == 40 and saved["sent"] == 40  # confirmed, not resent a second time
