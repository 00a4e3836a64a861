"""The runner's bookkeeping of gaps (streams/deleted_inputs.py): which gaps are inputs the broker
deleted before they were read, and which are offsets no consumer sees (a transaction's marker,
aborted or compacted records)."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.deleted_inputs import MAX_PENDING, Deleted, Gaps

TP = TopicPartition("cs.penalty", 1)
OTHER = TopicPartition("cs.penalty", 2)


def test_a_partition_first_seen_is_compared_with_the_groups_commit():
    gaps = Gaps()
    assert gaps.unknown([TP, OTHER]) == [TP, OTHER]
    gaps.note({TP: 7, OTHER: 0}, {TP: 2, OTHER: None})  # OTHER: no commit, a new group: nothing to compare
    assert gaps.pending == {TP: [(2, 7)]}
    assert gaps.resolve({TP: 5, OTHER: 0}) == [Deleted(TP, 2, 5)]  # 5 and 6 were there (a marker, compacted)
    assert Deleted(TP, 2, 5).count == 3
    assert gaps.pending == {} and gaps.checked == 1


def test_a_gap_below_the_log_start_only_in_part_counts_that_part():
    gaps = Gaps()
    gaps.advanced({TP: 10})
    assert gaps.unknown([TP]) == []
    gaps.note({TP: 20}, {})
    assert gaps.resolve({TP: 30}) == [Deleted(TP, 10, 20)]  # the log start moved on since: the gap is the bound
    gaps.advanced({TP: 25})
    gaps.note({TP: 26}, {})
    assert gaps.resolve({TP: 0}) == []  # a marker: the log starts at 0


def test_several_gaps_of_a_partition_are_settled_each_on_its_own():
    gaps = Gaps()
    gaps.advanced({TP: 10})
    gaps.note({TP: 12}, {})  # 10, 11 deleted
    gaps.advanced({TP: 15})
    gaps.note({TP: 16}, {})  # 15: a marker (read past by then: not below the log start of 12)
    assert gaps.resolve({TP: 12}) == [Deleted(TP, 10, 12)]


def test_no_gap_when_a_batch_begins_where_expected_or_before():
    gaps = Gaps()
    gaps.advanced({TP: 10})
    gaps.note({TP: 10}, {})
    gaps.note({TP: 4}, {})  # read again (a rewind, a redelivery)
    assert gaps.pending == {}


def test_a_partition_revoked_is_compared_with_the_commit_again():
    gaps = Gaps()
    gaps.advanced({TP: 10, OTHER: 3})
    gaps.forget({TP})
    assert gaps.unknown([TP, OTHER]) == [TP]
    gaps.note({TP: 40}, {TP: 40})  # another worker read 10-39 meanwhile and committed: no gap
    assert gaps.pending == {}


def test_pending_gaps_are_bounded_while_the_broker_does_not_answer():
    gaps = Gaps()
    for n in range(MAX_PENDING + 10):
        gaps.advanced({TP: 2 * n})
        gaps.note({TP: 2 * n + 1}, {})
    assert len(gaps.pending[TP]) == MAX_PENDING
    assert gaps.pending[TP][0] == (0, 1)  # the lowest kept
