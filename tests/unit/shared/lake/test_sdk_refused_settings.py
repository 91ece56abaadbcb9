"""A connection string the storage SDK cannot parse is a ``ConfigurationError`` naming the setting, never its key.

The settings loader refuses it first (``shared.settings``); settings that reach a store some other way are refused by
the store too, instead of the SDK's ``ValueError`` ("Connection string is either blank or malformed.") as a traceback.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import SecretStr

from shared.errors import ConfigurationError
from shared.lake.adls import AdlsLake
from shared.lake.blob import BlobLake
from shared.settings import Settings

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _unchecked(connection_string: str) -> Settings:
    values = {"lake_kind": "blob", "lake_connection_string": SecretStr(connection_string)}
    return Settings.model_construct(**(Settings().model_dump() | values))


@pytest.mark.parametrize("store", [BlobLake, AdlsLake])
@pytest.mark.parametrize(
    ("connection_string", "why"),
    [
        (f"garbage;{KEY[:40]}", "blank or malformed"),
        (f"AccountKey={KEY}", "missing required connection details"),
        (f"AccountName=a;AccountKey={KEY};BlobSecondaryEndpoint=https://a.blob.core.windows.net", "secondary"),
    ],
)
def test_a_connection_string_the_sdk_refuses_is_a_configuration_error_without_its_key(
    store: Any, connection_string: str, why: str
) -> None:
    with pytest.raises(ConfigurationError, match=r"^LAKE_CONNECTION_STRING: ") as refused:
        store.from_settings(_unchecked(connection_string), retry_total=0)
    assert why in str(refused.value)
    assert KEY[:40] not in str(refused.value) and "\n" not in str(refused.value)
