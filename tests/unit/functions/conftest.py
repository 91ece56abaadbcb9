"""What the function glue tests share: the user function the worker would call."""

from __future__ import annotations

from typing import Any

from tests.conftest import app_functions


def user_function(name: str) -> Any:
    return app_functions()[name].get_user_function()
