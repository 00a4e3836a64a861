"""Over how many partitions creditstream places the messages it keys by subject (分区放置).

A keyed message goes to partition ``murmur2(key) % N`` (sinks/kafka.py ``home_partition``), so a
subject's messages stay on one partition, and are applied in order by one worker, only while every
producer uses the same ``N``. Kafka lets the partition count of a topic be raised at any time
(``kafka-topics.sh --alter --partitions``, an operator after more workers than partitions), and a
producer takes the new count from its metadata: one worker started after the change (or restarted,
or any after its metadata's next refresh, 5 minutes) would place a subject's next events on
another partition than the one its earlier events wait on, owned by another worker, and the two
would apply the subject at once, each fenced only by its own partition's position. The subject
group would not even read the new partitions until its leader's metadata refresh.

So ``N`` is not the topic's count now but the count recorded in Redis (``Keys.placement``) when
creditstream first placed messages on the topic: every producer of the topic (the workers' agents,
``dlq redrive``) uses it, and a replay checks the log against it. Partitions beyond it stay empty.
``creditstream partitions --to`` raises the count and the record together, with the workers
stopped and the subject-event log applied (ops/partitions.py; docs/operations.md, More partitions).

A topic with fewer partitions than recorded was deleted and created again (Kafka never removes a
partition): a worker refuses to start (:class:`PlacementError`) rather than place subjects anew.

Raising the count leaves a subject's earlier messages on its old partition and puts its later ones
on its new one. ``creditstream partitions --to`` records where each placed topic's log ended then
(:class:`PlacementChange`, ``Keys.placement_changes``), the workers stopped and every input applied,
so that a reader that needs a subject's messages in order (a replay, its list-change comparison)
reads the log span by span (:func:`spans`): within a span every subject sits on one partition, and
a span's messages all came before the next span's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import structlog

from sinks.keys import Keys

log = structlog.get_logger("creditstream.streams.placement")

PLACED = ("subject_events", "list_changes")
"""The topics (``Topics`` attributes) whose placement is recorded: the subject-event log (one worker
per subject) and the list changes downstream systems read in each subject's order."""


class PlacementError(RuntimeError):
    """A topic has fewer partitions than creditstream placed its messages over (exit 2)."""


def placed_topics(topics) -> list[str]:
    return [getattr(topics, name) for name in PLACED]


def judge(topic: str, recorded: int, current: int) -> str | None:
    """Pure: what is wrong with placing ``topic``'s messages over ``recorded`` partitions when it has
    ``current``; None if nothing. Raises :class:`PlacementError` when it cannot be done at all."""
    if current < recorded:
        raise PlacementError(
            f"topic {topic} has {current} partitions, but creditstream placed its subjects over {recorded}: "
            f"was it deleted and created again? Its messages would reach other partitions than the ones "
            f"the state was built from. Recreate it with {recorded} partitions, or rebuild the state "
            f"(`creditstream replay`) and record the new count (`creditstream partitions --to {current}`)")
    if current > recorded:
        return (f"topic {topic} has partitions beyond the first {recorded}, over which creditstream places "
                f"its subjects: partitions {recorded}..{current - 1} stay empty until "
                f"`creditstream partitions --to {current}` (docs/operations.md, More partitions)")
    return None


async def recorded(redis, keys: Keys, topics: Iterable[str]) -> dict[str, int]:
    """The partition counts recorded for ``topics`` (those without one are left out)."""
    topics = list(topics)
    values = await redis.hmget(keys.placement, topics) if topics else []
    return {t: int(v) for t, v in zip(topics, values) if v is not None}


async def settle(redis, keys: Keys, counts: Mapping[str, int]) -> dict[str, int]:
    """At a worker's start: record each topic's partition count where none is recorded yet (the first
    worker on a fresh topic; HSETNX, so two starting at once record the same), and return the counts
    to place over, one warning per topic with partitions beyond them. :class:`PlacementError` for a
    topic with fewer partitions than recorded. ``counts``: each topic's partitions now (0: none yet,
    nothing recorded)."""
    pipe = redis.pipeline(transaction=False)
    for topic, n in counts.items():
        if n > 0:
            pipe.hsetnx(keys.placement, topic, n)
    await pipe.execute()
    placed = await recorded(redis, keys, counts)
    for topic, n in placed.items():
        problem = judge(topic, n, counts[topic])
        if problem:
            log.warning(problem, topic=topic, partitions=counts[topic], placed_over=n)
    return placed


def partition_for(placement: Mapping[str, int], topic: str, key: bytes | None) -> int | None:
    """The partition a keyed message of a placed topic goes to; None: the producer's choice."""
    from sinks.kafka import home_partition

    n = placement.get(topic)
    if n is None or key is None:
        return None
    return home_partition(key, range(n))


@dataclass(frozen=True)
class PlacementChange:
    """A placed topic's count raised from ``placed_over`` to ``to`` (``creditstream partitions
    --to``): ``ends``, each partition's log end then (messages at offsets before it were placed over
    ``placed_over``; partitions added by the change are not in it)."""
    topic: str
    placed_over: int
    to: int
    at_ms: int
    ends: Mapping[int, int]

    def as_json(self) -> str:
        return json.dumps({"placed_over": self.placed_over, "to": self.to, "at_ms": self.at_ms,
                           "ends": {str(p): e for p, e in sorted(self.ends.items())}}, sort_keys=True)

    @classmethod
    def from_json(cls, topic: str, raw: bytes | str) -> PlacementChange:
        doc = json.loads(raw)
        return cls(topic, int(doc["placed_over"]), int(doc["to"]), int(doc["at_ms"]),
                   {int(p): int(e) for p, e in doc["ends"].items()})


@dataclass(frozen=True)
class Span:
    """A stretch of a placed topic's log over which every subject's messages sit on partition
    ``murmur2(key) % placed_over``: read from ``start`` (None: each partition's beginning; a partition
    left out: its beginning) up to ``stop`` (exclusive; None: the log's end; a partition left out of
    it: none of it, it did not exist then)."""
    placed_over: int
    start: Mapping[int, int] | None
    stop: Mapping[int, int] | None


def spans(changes: Iterable[PlacementChange], placed_now: int, start: Mapping[int, int] | None = None) -> list[Span]:
    """Pure: a placed topic's log (from ``start``, as ``replay --from-offsets``) in the spans of its
    placement changes, oldest first: without a change, one span of the whole log over ``placed_now``.
    A span after a change starts where the change found the log ended (or at ``start``, if later)."""
    out: list[Span] = []
    lower: dict[int, int] | None = dict(start) if start else None
    for change in sorted(changes, key=lambda c: c.to):
        out.append(Span(change.placed_over, lower, dict(change.ends)))
        lower = {p: max(end, (start or {}).get(p, 0)) for p, end in change.ends.items()}
        lower.update({p: o for p, o in (start or {}).items() if p not in change.ends})
    out.append(Span(placed_now, lower, None))
    return out


async def record_change(redis, keys: Keys, change: PlacementChange) -> None:
    """Record a raised count and where the log ended, in one transaction: a reader never sees the new
    count without the change (ops/partitions.py; run again after a failure, the change is written
    again with the log's ends then, the workers still stopped)."""
    pipe = redis.pipeline(transaction=True)
    pipe.hset(keys.placement_changes, f"{change.topic} {change.to}", change.as_json())
    pipe.hset(keys.placement, change.topic, change.to)
    await pipe.execute()


async def changes(redis, keys: Keys, topic: str) -> list[PlacementChange]:
    """The recorded changes of ``topic``'s placement, oldest first."""
    recorded = await redis.hgetall(keys.placement_changes)
    found = [PlacementChange.from_json(topic, raw) for field, raw in recorded.items()
             if (field.decode() if isinstance(field, bytes) else field).rsplit(" ", 1)[0] == topic]
    return sorted(found, key=lambda c: c.to)
