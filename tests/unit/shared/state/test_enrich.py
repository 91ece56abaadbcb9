"""The stream-table join: clicks get the profile fields of known users only."""

from __future__ import annotations

from shared.state.enrich import enrich_clicks, profile_keys, usable_profile


def test_clicks_are_joined_with_known_profiles_only() -> None:
    rows = [
        {"userid": 7, "user_known": True},
        {"userid": 8, "user_known": True},
        {"userid": -1, "user_known": False},
    ]
    assert profile_keys(rows) == {"7", "8"}
    profiles = {"7": {"profile": {"username": "Reeva_3", "city": "London", "level": "Gold"}}, "8": None}
    assert enrich_clicks(rows, profiles) == 1
    assert (rows[0]["username"], rows[0]["city"], rows[0]["level"]) == ("Reeva_3", "London", "Gold")
    assert rows[1]["username"] is None and rows[2]["city"] is None


def test_a_profile_with_missing_joined_fields_is_still_usable() -> None:
    """A user without a city or level (None in the profile) is joined, not read as no state."""
    assert usable_profile({"profile": {"username": "Reeva_3", "city": None, "level": None}})
    assert usable_profile({})
    assert not usable_profile({"profile": {"username": "Reeva_3", "city": 7, "level": None}})
