"""Key buckets: the same hash in every process, spread evenly, never clashing with per-key ids."""

from __future__ import annotations

from collections import Counter

import pytest

from shared.state.buckets import bucket_index, bucket_key, is_bucket_key
from shared.state.keys import encode_key


def test_a_key_hashes_to_the_same_bucket_in_every_process() -> None:
    """BLAKE2b, not Python's salted hash: a changed hash would orphan every deployment's state."""
    assert [bucket_index(k, 512) for k in ("device-00001", "ip:111.152.45.45", "7", "é/?#")] == [510, 8, 386, 426]
    assert bucket_key(7, 512) == "~b7of512" and is_bucket_key("~b7of512")
    assert not any(is_bucket_key(encode_key(k)) for k in ("~b7of512", "b7of512", "7"))  # per-key ids never clash
    assert not is_bucket_key("~b7of512\n")  # the whole id, not up to a final newline
    with pytest.raises(ValueError):
        bucket_key(512, 512)


def test_keys_spread_evenly_over_buckets() -> None:
    counts = Counter(bucket_index(f"sensor-{i:06d}", 256) for i in range(100_000))
    assert len(counts) == 256 and max(counts.values()) < 1.25 * 100_000 / 256


def test_only_the_canonical_spelling_of_a_bucket_names_one() -> None:
    """``~b07of512`` is no bucket this code writes: a leading zero would give one bucket two entity ids."""
    assert not any(is_bucket_key(key) for key in ("~b07of512", "~b7of0512", "~bof512", "~b-1of512"))
    assert is_bucket_key("~b0of1")
