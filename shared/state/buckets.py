"""Key buckets: a source's keys hashed into N entities, each holding its keys' states.

One entity per key made a batch send about one operation per event once keys outnumber the
events of a batch; a bucket entity takes every key of the batch that hashes to it in one
operation, so a batch sends at most min(distinct keys, N) operations (``shared.state.aggregate``).

The hash is BLAKE2b of the key's UTF-8 bytes, so a key's bucket is the same in every process,
version and platform (Python's ``hash`` is salted per process). A bucket's entity key is
``~b<index>of<N>``: no encoded key (``shared.state.keys``) contains ``~`` before a lower-case
letter, so bucket ids and the per-key entities of the previous layout never meet, and a change
of N names new buckets instead of silently mixing two layouts (moving between them is
``shared.state.migration``'s job).
"""

from __future__ import annotations

import re
from hashlib import blake2b

_BUCKET_KEY = re.compile(r"^~b(0|[1-9][0-9]*)of([1-9][0-9]*)\Z")
MAX_BUCKETS = 65_536


def bucket_index(key: str, buckets: int) -> int:
    """The bucket (0 .. buckets - 1) that holds ``key``."""
    digest = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def bucket_key(index: int, buckets: int) -> str:
    """The entity key of bucket ``index`` of ``buckets``, e.g. ``~b7of512``."""
    if not 0 <= index < buckets <= MAX_BUCKETS:
        raise ValueError(f"bucket {index} of {buckets} does not exist")
    return f"~b{index}of{buckets}"


def bucket_for(key: str, buckets: int) -> str:
    """The entity key of the bucket that holds ``key``."""
    return bucket_key(bucket_index(key, buckets), buckets)


def is_bucket_key(entity_key: str) -> bool:
    """Whether an entity key names a bucket (else it is a per-key entity of the previous layout)."""
    return _BUCKET_KEY.match(entity_key) is not None
