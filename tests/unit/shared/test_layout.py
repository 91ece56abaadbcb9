"""Lake paths: file names from topic, partition and offsets; no topic name escapes its path segment."""

from __future__ import annotations

import pytest

from shared.errors import UnsafePath
from shared.layout import batch_file_name, check_relative_path, is_reprocessed, reprocessed_extension, safe_segment
from shared.records import OffsetSpan, TopicPartition


def test_file_name_is_topic_partition_and_zero_padded_offsets() -> None:
    assert batch_file_name(TopicPartition("clickstream", 2), OffsetSpan(7, 1234), 0, "parquet") == (
        "clickstream+2+i0+00000000000000000007+00000000000000001234.parquet"
    )


@pytest.mark.parametrize("topic", ["../../etc", "a/b", "..", "ünïcode topic"])
def test_hostile_topic_names_stay_inside_one_path_segment(topic: str) -> None:
    segment = safe_segment(topic) if topic != ".." else None
    if segment is None:
        with pytest.raises(UnsafePath):
            safe_segment(topic)
        return
    assert "/" not in segment and segment not in (".", "..")
    check_relative_path(f"raw/x/{segment}")


@pytest.mark.parametrize("path", ["raw/clickstream/date=2026-01-01/hour=00/x.parquet\n", "raw/clickstream\n/x.parquet"])
def test_a_path_with_a_newline_in_a_segment_is_refused(path: str) -> None:
    """Every segment must be safe as a whole: a final newline (which a pattern's ``$`` lets through) too."""
    with pytest.raises(UnsafePath):
        check_relative_path(path)


@pytest.mark.parametrize("topic", ["orders", "orders.reprocessed-v2", "reprocessed-"])
def test_a_reprocessed_dead_letter_is_told_by_its_extension_never_by_its_topic(topic: str) -> None:
    """Review 15: ``.reprocessed-`` was looked for anywhere in the path; ``orders.reprocessed-v2`` is a legal topic,
    whose every dead letter then counted as reprocessed: never redriven, and reported as a gap by reconcile."""
    where, span = TopicPartition(topic, 0), OffsetSpan(4, 9)
    letter = f"deadletter/orders/date=2026-11-24/hour=10/{batch_file_name(where, span, 0, 'jsonl.gz')}"
    reprocessed = letter.replace(".jsonl.gz", f".{reprocessed_extension('ab' * 32)}")
    assert not is_reprocessed(letter)
    assert is_reprocessed(reprocessed)
