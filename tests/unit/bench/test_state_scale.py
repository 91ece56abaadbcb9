"""Each keyed source's N holds its fullest bucket under 256 KB at 100,000 keys, with keys at steady state."""

from __future__ import annotations

import pytest

from bench.state_scale import LIMITS, bucket_bound
from shared.state.registry import ENTITY_KINDS


@pytest.mark.parametrize("source", sorted(ENTITY_KINDS))
def test_the_fullest_bucket_stays_under_the_ceiling_at_steady_state(source: str) -> None:
    fullest_keys, per_key, fullest_bytes = bucket_bound(source)
    assert fullest_bytes <= LIMITS["bucket_bytes"], (
        f"{source}: {fullest_keys} keys of ~{per_key:,.0f} B in the fullest of "
        f"{ENTITY_KINDS[source].buckets} buckets is {fullest_bytes / 1024:,.0f} KB"
    )
