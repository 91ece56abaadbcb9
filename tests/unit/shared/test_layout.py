"""Lake paths: file names from topic, partition and offsets; no topic name escapes its path segment."""

from __future__ import annotations

import pytest

from shared.errors import UnsafePath
from shared.layout import batch_file_name, check_relative_path, safe_segment
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
