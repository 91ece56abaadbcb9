"""The source model: the record validator agrees with the pydantic model."""

from __future__ import annotations

import pytest

from shared.source_model import record_validator
from shared.sources import SOURCES, get_source
from tests.conftest import records_for


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_record_validator_and_model_agree_on_generated_records(name: str) -> None:
    source = get_source(name)
    for record in records_for(source, 30):
        as_model = source.model.model_validate_json(record.value or b"").model_dump()
        as_dict = record_validator(source.model).validate_json(record.value or b"")
        assert as_dict == {k: v for k, v in as_model.items() if k in as_dict}
