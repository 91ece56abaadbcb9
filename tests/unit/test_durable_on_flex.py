"""host.json follows Microsoft's advice for Durable Functions on Flex Consumption (Azure Storage backend).

"Reduce the queue polling interval to 10 seconds or less" (Microsoft Learn, "Azure Storage provider
for Durable Functions", section Flex Consumption plan): the Durable Functions 2.x setting is
``extensions.durableTask.storageProvider.maxQueuePollingInterval`` (default 30 s).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from devhost.runtime.catalog import parse_timespan
from tests.conftest import ROOT

FLEX_POLLING_LIMIT_S = 10


def _storage_provider() -> dict[str, Any]:
    host = json.loads((ROOT / "host.json").read_text())
    return dict(host["extensions"]["durableTask"]["storageProvider"])


def test_azure_storage_queues_are_polled_at_most_every_ten_seconds() -> None:
    provider = _storage_provider()
    if str(provider.get("type", "AzureStorage")).lower().replace("_", "") != "azurestorage":
        pytest.skip(f"the Durable backend is {provider['type']}: the Azure Storage polling advice does not apply")
    interval = parse_timespan(provider["maxQueuePollingInterval"])
    assert 0 < interval <= FLEX_POLLING_LIMIT_S
