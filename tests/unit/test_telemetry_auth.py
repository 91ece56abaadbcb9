"""Application Insights with Entra ID: the exporter gets the app's managed identity when the
authentication string asks for it, and nothing else changes without it.

Application Insights itself cannot run here, so ``configure_azure_monitor`` is replaced by a
recorder of its arguments (``_RecordingConfigure``); the credential objects are the real ones.
"""

from __future__ import annotations

from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential

from shared import telemetry as telemetry_module
from shared.settings import load_settings

CONNECTION = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"


class _RecordingConfigure:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> _RecordingConfigure:
    import azure.monitor.opentelemetry as monitor

    recording = _RecordingConfigure()
    monkeypatch.setattr(monitor, "configure_azure_monitor", recording)
    return recording


def test_aad_authentication_string_exports_with_the_system_assigned_identity(recorder: _RecordingConfigure) -> None:
    settings = load_settings(
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD",
        }
    )
    assert telemetry_module.configure(settings) is True
    (call,) = recorder.calls
    assert call["connection_string"] == CONNECTION
    assert isinstance(call["credential"], ManagedIdentityCredential)


def test_client_id_selects_a_user_assigned_identity() -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=11111111-2222;Authorization=AAD"})
    options = telemetry_module.exporter_options(settings)
    credential = options["credential"]
    assert isinstance(credential, ManagedIdentityCredential)
    assert "11111111-2222" in repr(vars(credential._credential))  # the client id reaches the identity endpoint


def test_without_authentication_string_the_connection_string_alone_is_used(recorder: _RecordingConfigure) -> None:
    assert telemetry_module.configure(load_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": CONNECTION})) is True
    (call,) = recorder.calls
    assert "credential" not in call


def test_nothing_is_configured_without_a_connection_string(recorder: _RecordingConfigure) -> None:
    settings = load_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD"})
    assert telemetry_module.configure(settings) is False
    assert recorder.calls == []
