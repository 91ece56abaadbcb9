"""Keyed state (the seed's KTable) held by Durable entities: pure reducers, batch pre-aggregation, lookups.

Every reducer is ``reduce(state, operation, payload) -> state`` over plain JSON. A payload
covers one topic-partition and carries the key's events of one batch, sorted by offset;
``shared.state.offsets`` applies only events past the entity's mark for that partition, so
a redelivered or re-cut batch never counts twice.
"""
