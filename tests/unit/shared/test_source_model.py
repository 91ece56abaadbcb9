"""The source model: the record validator agrees with the pydantic model."""

from __future__ import annotations

import pytest

from shared.source_model import record_validator
from shared.sources import SOURCES, get_source
from tests.conftest import records_for


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_record_validator_and_model_agree_on_generated_records(name: str) -> None:
    source = get_source(name)
    records = records_for(source, 30)
    assert len(records) == 30  # a generator giving nothing would pass every check below
    for record in records:
        as_model = source.model.model_validate_json(record.value or b"").model_dump()
        as_dict = record_validator(source.model).validate_json(record.value or b"")
        assert as_dict == {k: v for k, v in as_model.items() if k in as_dict}


@pytest.mark.parametrize("millis", [543114725359, 269551745655, -134975980075, 0, 1_764_270_000_123])
def test_an_event_time_is_the_millisecond_the_record_names(millis: int) -> None:
    """``timestamp() * 1000`` is a float product: truncated, it put such instants a millisecond early."""
    from datetime import UTC, datetime, timedelta

    from shared.source_model import epoch_ms

    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
    assert epoch_ms(moment) == millis
    assert epoch_ms(moment.replace(tzinfo=None)) == millis, "a naive time is taken as UTC"
