"""Entity keys on the wire: any string encodes reversibly to a storable key; what cannot is refused."""

from __future__ import annotations

import unicodedata

import pytest

from shared.state.keys import MAX_ENCODED_KEY_LENGTH, BadKey, check_key, decode_key, encode_key, is_storable_key

HOSTILE_KEYS = [
    "a/b", "?", "#", "%", "%2F", "\\", "..", ".", "...", "a.", ".a", " ", "\t\n", "\x00", "\x01\x7f\x9f", "~", "~7E",
    "@user@x", "ключ", "🙂", unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"),
]  # fmt: skip


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_every_key_encodes_reversibly_to_a_storable_url_segment(key: str) -> None:
    encoded = encode_key(key)
    assert decode_key(encoded) == key
    assert is_storable_key(encoded)
    assert encoded not in (".", "..") and not encoded.endswith(".") and "%" not in encoded


def test_distinct_keys_never_share_an_entity() -> None:
    encoded = [encode_key(key) for key in HOSTILE_KEYS]
    assert len(set(encoded)) == len(HOSTILE_KEYS)


def test_readable_keys_are_unchanged() -> None:
    assert [encode_key(k) for k in ("device-00001", "ip:111.152.45.45", "7")] == [
        "device-00001",
        "ip:111.152.45.45",
        "7",
    ]


@pytest.mark.parametrize("key", ["", "é" * 100, "k" * (MAX_ENCODED_KEY_LENGTH + 1), "\ud800"])
def test_empty_overlong_and_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(BadKey):
        encode_key(key)


def test_check_key_agrees_with_encode_key() -> None:
    for key in ["", "é" * 100, "k" * 33, "a/b", "é" * 30]:
        try:
            encode_key(key)
            fits = True
        except BadKey:
            fits = False
        try:
            check_key(key)
            checked = True
        except BadKey:
            checked = False
        assert checked == fits, key


@pytest.mark.parametrize("key", ["abc\n", "a\n", "device-00001\n"])
def test_a_key_ending_in_a_newline_is_escaped_not_sent_raw(key: str) -> None:
    """A final newline is escaped like any control character (a pattern's ``$`` would let it through raw:
    the Durable SDK pastes the key into the URL, and URL parsing drops the newline, reaching another key)."""
    encoded = encode_key(key)
    assert encoded == key[:-1] + "~0A"
    assert decode_key(encoded) == key and is_storable_key(encoded)


def test_a_raw_newline_is_not_an_encoded_key() -> None:
    with pytest.raises(BadKey):
        decode_key("abc\n")


def test_a_key_of_exactly_the_longest_encoded_length_is_taken() -> None:
    """The limit is inclusive: a 400-character key names an entity; only longer ones are dead-lettered."""
    assert encode_key("k" * MAX_ENCODED_KEY_LENGTH) == "k" * MAX_ENCODED_KEY_LENGTH


@pytest.mark.parametrize("raw", ["a#b", "a/b", "a\\b", "a?b", "a\x7fb", ""])
def test_a_raw_key_the_table_backend_cannot_store_is_refused_by_the_local_host_check(raw: str) -> None:
    """Azure Table keys may not hold ``/ \\ # ?`` or control characters: the local host refuses them as Azure would."""
    assert not is_storable_key(raw)
