"""tools.cost prices what the code's OpenTelemetry exporter sends to Application Insights (issue 19): host.json's
levels do not govern it, so the model follows shared/telemetry.py, not host.json, for its traces."""

from __future__ import annotations

from dataclasses import replace

import pytest

from shared.telemetry import TRACE_SAMPLING_RATIO
from tools import cost


def test_the_model_samples_traces_as_the_code_does_and_none_by_default() -> None:
    config = cost.deployed()
    assert config.trace_sampling == TRACE_SAMPLING_RATIO == 0.0  # no request row for a successful execution


def test_sampled_traces_are_priced_as_a_request_row_per_processing_invocation() -> None:
    results = cost.load_results()
    config = cost.deployed()
    load = cost.load_at(10, True, config, results)
    assert load.invocations > 0
    unsampled = cost._log_bytes(load, config)
    sampled = cost._log_bytes(load, replace(config, trace_sampling=0.01))
    assert sampled - unsampled == pytest.approx(load.invocations * 0.01 * cost.ROW_BYTES["request"])
    logs = "Application Insights logs"
    month = cost.month(10, True, config, results).lines[logs]
    assert cost.month(10, True, replace(config, trace_sampling=1.0), results).lines[logs] > month
