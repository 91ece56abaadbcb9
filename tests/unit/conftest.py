"""Helpers the unit tests of more than one package use."""

from __future__ import annotations

import base64


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
