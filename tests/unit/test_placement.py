"""streams/placement.py: the partition count keyed messages are placed over, judged against the
topic's count now (pure), and the partition a re-driven message goes to."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.placement import PlacementError, judge, partition_for


def test_a_topic_as_recorded_is_fine():
    assert judge("t", 12, 12) is None


def test_partitions_beyond_the_recorded_count_are_said_to_stay_empty():
    said = judge("cs.subject-events", 12, 24)
    assert "partitions beyond the first 12" in said and "12..23 stay empty" in said
    assert "creditstream partitions --to 24" in said


def test_fewer_partitions_than_recorded_cannot_be_placed_over():
    with pytest.raises(PlacementError, match="has 4 partitions, but creditstream placed its subjects over 12"):
        judge("cs.subject-events", 12, 4)


def test_a_redriven_message_goes_where_the_workers_place_its_key():
    placement = {"cs.subject-events": 4}
    for key in (b"91310110666007217T", b"p.0123456789abcdef0123456789abcdef", b"x"):
        assert partition_for(placement, "cs.subject-events", key) == DefaultPartitioner()(key, [0, 1, 2, 3],
                                                                                            [0, 1, 2, 3])
    assert partition_for(placement, "cs.penalty", b"k") is None  # not placed: the producer chooses
    assert partition_for(placement, "cs.subject-events", None) is None
