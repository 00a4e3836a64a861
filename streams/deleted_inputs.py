"""Inputs the broker deleted before an agent read them: found and said, since they cannot be applied.

A topic with a finite ``retention.ms`` or ``retention.bytes`` deletes its oldest inputs whether or
not they were read; ``DeleteRecords`` (``kafka-delete-records.sh``) does the same by hand. When the
workers were stopped, or behind, for longer than the retention, an agent's next position lies below
the partition's log start. Its consumer then moves to the log start (``auto_offset_reset``
"earliest", streams/kafka.py ``consumer``) and says nothing an operator sees (aiokafka logs it at
INFO). The inputs in between were never applied, and nothing in creditstream can bring them back:
their department must send them again. So they must not pass silently.

``creditstream topics`` creates every topic with ``retention.ms=-1`` and a worker warns at start of
a topic configured otherwise (docs/operations.md); this catches what happened anyway.

How (streams/runner.py): batch by batch, the runner says where it expected each partition to go on
(the offset after the last record it processed there, or, at a partition's first batch since it was
assigned, the group's committed offset) and where the batch began. A batch that begins past the
expected offset is a gap. Most gaps lose nothing: a transaction's commit marker, an aborted
transaction's records, records compacted away. So each gap is checked against the partition's log
start, at most every ``CHECK_EVERY_S``: offsets below the log start no longer exist, and
``[expected, min(first, log start))`` were deleted before they were read. (A commit marker among
them counts as one input: the count is at most one over per transaction.)

Pure bookkeeping: no client, no I/O. The runner asks the broker and reports
(``creditstream_inputs_deleted_unread_total``, a log line at error level).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import TopicPartition

CHECK_EVERY_S = 5.0
"""The least time between two questions about log starts (a topic written in transactions has a gap
at most batches)."""
MAX_PENDING = 64
"""Gaps kept per partition while the broker does not answer about log starts (the first ones: the
lowest offsets, where deletion starts)."""


@dataclass(frozen=True)
class Deleted:
    """Offsets ``[first, end)`` of ``tp`` were deleted before they were read."""

    tp: TopicPartition
    first: int
    end: int

    @property
    def count(self) -> int:
        return self.end - self.first


class Gaps:
    """Where each partition was expected to go on, and the gaps not checked yet."""

    def __init__(self) -> None:
        self.expected: dict[TopicPartition, int] = {}
        self.pending: dict[TopicPartition, list[tuple[int, int]]] = {}  # tp -> [(expected, first)]
        self.checked = 0  # gaps settled against a log start, deletions or not

    def unknown(self, firsts: Iterable[TopicPartition]) -> list[TopicPartition]:
        """The partitions of a batch with no expected offset: first seen since their assignment."""
        return [tp for tp in firsts if tp not in self.expected]

    def note(self, firsts: Mapping[TopicPartition, int], commits: Mapping[TopicPartition, int | None]) -> None:
        """A batch beginning at ``firsts``; ``commits``: the group's committed offsets of the partitions
        :meth:`unknown` named (None: no commit, or not known: nothing to compare with)."""
        for tp, first in firsts.items():
            expected = self.expected.get(tp)
            if expected is None:
                expected = commits.get(tp)
                if expected is None:
                    continue
            if first > expected:
                gaps = self.pending.setdefault(tp, [])
                if len(gaps) < MAX_PENDING:
                    gaps.append((expected, first))

    def advanced(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A batch done: each partition goes on at ``offsets`` (its last record + 1)."""
        self.expected.update(offsets)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Partitions revoked or sought: another worker may read them meanwhile; at their next batch the
        group's commit is the expected offset again."""
        for tp in tps:
            self.expected.pop(tp, None)

    def resolve(self, starts: Mapping[TopicPartition, int]) -> list[Deleted]:
        """The pending gaps of the partitions in ``starts`` (their log starts, asked after the gaps were
        seen) settled: the inputs deleted before they were read, if any."""
        found = []
        for tp, start in starts.items():
            for expected, first in self.pending.pop(tp, ()):
                self.checked += 1
                end = min(first, start)
                if end > expected:
                    found.append(Deleted(tp, expected, end))
        return found
