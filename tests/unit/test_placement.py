"""streams/placement.py: the partition count keyed messages are placed over, judged against the
topic's count now (pure), and the partition a re-driven message goes to."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from streams.placement import PlacementChange, PlacementError, Span, judge, partition_for, spans


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


def test_a_log_never_raised_is_one_span():
    assert spans([], 4) == [Span(4, None, None)]
    assert spans([], 4, {1: 7}) == [Span(4, {1: 7}, None)]


def test_a_raised_log_is_read_span_by_span_each_over_its_count():
    first = PlacementChange("cs.subject-events", 4, 8, 1, {0: 10, 1: 0, 2: 5, 3: 7})
    second = PlacementChange("cs.subject-events", 8, 16, 2, {0: 12, 1: 3, 2: 5, 3: 9, 4: 2, 5: 0, 6: 1, 7: 4})
    # oldest first, whatever order they were read in; the new partitions of a change start at 0
    assert spans([second, first], 16) == [
        Span(4, None, {0: 10, 1: 0, 2: 5, 3: 7}),
        Span(8, {0: 10, 1: 0, 2: 5, 3: 7}, dict(second.ends)),
        Span(16, dict(second.ends), None),
    ]


def test_a_partial_replay_starts_each_span_at_its_offsets_or_the_change_whichever_is_later():
    change = PlacementChange("cs.subject-events", 2, 4, 1, {0: 10, 1: 20})
    assert spans([change], 4, {0: 15, 1: 5, 3: 2}) == [
        Span(2, {0: 15, 1: 5, 3: 2}, {0: 10, 1: 20}),  # partition 0: nothing of it in this span
        Span(4, {0: 15, 1: 20, 3: 2}, None),
    ]


def test_a_placement_change_survives_its_stored_form():
    change = PlacementChange("cs.list-changes", 12, 24, 1_796_000_000_000, {0: 3, 11: 40})
    assert PlacementChange.from_json("cs.list-changes", change.as_json().encode()) == change
