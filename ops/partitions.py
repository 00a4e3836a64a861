"""``creditstream partitions``: each topic's partition count, and raising it safely.

A subject's messages go to one partition of a keyed topic, chosen over the partition count
recorded for the topic (streams/placement.py). Raising the count moves subjects to other
partitions, so it is done with the workers stopped and the subject-event log applied, and the
record moves with it:

1. refuse on a broker that cannot add partitions (Tansu), while any worker of the namespace runs
   (its Redis heartbeat, or a member in the subject agent's group), or while the subject agent has
   inputs still to apply (``creditstream positions``);
2. add partitions to every creditstream topic with fewer than the count asked for, except the
   compacted ``registration`` topic (a key that moved would keep a value on each partition);
3. record the new count for the placed topics, each with where its log ended
   (``Keys.placement_changes``): a subject's earlier messages stay on its old partition, and a
   replay reads the log span by span, so that it applies them in the order the workers did.

A step that fails leaves what it did: running the command again goes on (adding partitions up to a
count a topic already has is a no-op here).
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from creditstream.connections import redis_client
from creditstream.settings import Settings
from domain.clock import now_ms
from sinks.keys import Keys
from streams import kafka, placement
from streams.topics import Topics

log = structlog.get_logger("creditstream.ops.partitions")


class PartitionsRefused(Exception):
    """The count cannot be raised (exit 2), or not now (``busy``: workers run, inputs wait; exit 1):
    what to do first is in the message."""

    def __init__(self, message: str, *, busy: bool = False):
        super().__init__(message)
        self.busy = busy


@dataclass
class TopicPartitions:
    topic: str
    partitions: int              # now (0: the topic does not exist)
    placed_over: int | None      # recorded for a placed topic (None: not placed, or not yet recorded)
    after: int | None = None     # the count after `--to` (None: left as it is)
    note: str = ""

    def as_json(self) -> dict:
        return {"topic": self.topic, "partitions": self.partitions, "placed_over": self.placed_over,
                "after": self.after, "note": self.note}


async def show(settings: Settings) -> list[TopicPartitions]:
    """Every creditstream topic's partition count, and the count recorded for the placed ones."""
    counts = await kafka.partition_counts(settings, Topics(settings).all())
    redis = redis_client(settings)
    try:
        placed = await placement.recorded(redis, Keys(settings.namespace), counts)
    finally:
        await redis.aclose()
    return [TopicPartitions(t, n, placed.get(t)) for t, n in counts.items()]


async def _refuse_while_running(settings: Settings, redis) -> None:
    from ops.inspect import running_workers
    from ops.positions import _members, group_of

    workers = await running_workers(redis, Keys(settings.namespace), scan=True)
    if workers:
        who = ", ".join(f"{w.get('host', '?')} pid {w.get('pid', '?')}" for w in workers[:5])
        raise PartitionsRefused(f"{len(workers)} worker(s) of namespace {settings.namespace!r} are running "
                                f"({who}): stop them first (a worker killed a moment ago counts until its "
                                f"heartbeat expires, within 15 s)", busy=True)
    group = group_of(settings, "subject")
    members = await _members(settings, group)
    if members:
        raise PartitionsRefused(f"consumer group {group} has {members} member(s): stop the workers first "
                                f"(a member of a worker that just stopped leaves within the session timeout)",
                                busy=True)


async def _refuse_while_behind(settings: Settings) -> None:
    from ops.positions import show as positions

    behind = [r for r in await positions(settings, ("subject",)) if r.behind]
    if behind:
        where = ", ".join(f"{r.topic}[{r.partition}] {r.behind}" for r in behind[:6])
        raise PartitionsRefused(f"the subject agent has inputs still to apply ({where}): start the workers "
                                f"with the department producers stopped, wait until `creditstream positions` "
                                f"shows BEHIND 0 for the subject agent, stop the workers, then run this again",
                                busy=True)


async def grow(settings: Settings, to: int, *, dry_run: bool = False) -> tuple[list[TopicPartitions], bool]:
    """Raise every creditstream topic with fewer than ``to`` partitions to ``to`` (the compacted
    ``registration`` topic aside) and record ``to`` for the placed topics recorded with less; (every
    topic, whether there was anything to change). :class:`PartitionsRefused` when that is not safe now. ``dry_run``:
    the checks and the plan only."""
    if settings.is_tansu:
        raise PartitionsRefused("the embedded development broker (Tansu) cannot add partitions to a topic "
                                "(no CreatePartitions): start the stack afresh with CREDITSTREAM_PARTITIONS set")
    rows = await show(settings)
    placed_topics = set(placement.placed_topics(Topics(settings)))
    for r in rows:
        if r.partitions == 0:
            r.note = "does not exist: `creditstream topics` creates it with CREDITSTREAM_PARTITIONS partitions"
        elif Topics(settings).spec_of(r.topic).compacted:
            r.note = ("left: compacted, a key that moved would keep a value on each partition "
                      "(docs/operations.md, More partitions)")
        elif r.partitions > to:
            r.note = f"left: has more than {to} already (partitions are never removed)"
        elif r.partitions < to:
            r.after = to
    # a placed topic's record follows (never falls: a subject would move back)
    placed_less = [r for r in rows if r.topic in placed_topics and r.partitions and (r.placed_over or 0) < to]
    if not any(r.after for r in rows) and not placed_less:
        return rows, False  # nothing to do
    redis = redis_client(settings)
    try:
        await _refuse_while_running(settings, redis)
        await _refuse_while_behind(settings)
        if dry_run:
            return rows, True
        grown = {r.topic: to for r in rows if r.after}
        if grown:
            await kafka.add_partitions(settings, grown)
            log.info("partitions added", topics=sorted(grown), to=to)
        keys = Keys(settings.namespace)
        for r in placed_less:
            # the workers stopped and every input applied: the log's ends now divide each subject's
            # messages placed over the old count from those placed over the new one
            before = r.placed_over or r.partitions
            ends = {p: end for p, end in (await kafka.log_ends(settings, r.topic)).items() if p < before}
            if before < to and any(ends.values()):
                await placement.record_change(redis, keys, placement.PlacementChange(
                    r.topic, before, to, now_ms(), ends))
                log.info("placement change recorded", topic=r.topic, placed_over=before, to=to, log_ends=ends)
            else:  # nothing placed yet: no earlier messages to keep apart
                await redis.hset(keys.placement, r.topic, to)
            r.placed_over = to
    finally:
        await redis.aclose()
    return rows, True
