"""Where each agent stands on its input partitions, and moving the department agents' positions
(``creditstream positions``).

Each agent keeps two positions per input partition (docs/operations.md, "Durability"):

* the **consumer group's committed offset** (``{consumer_group}.{agent}``), where a worker starts
  reading;
* the **position Redis records**, written with the batch's own writes: the ingest and registry
  agents' ``{ns}:positions:{agent}`` hash (sinks/registry_index.py), the subject agent's
  ``{ns}:{gen}:position:{p}`` keys (sinks/redis_state.py).

A worker re-reads a partition from the position Redis records when that is behind the commit (Redis
lost its last writes). So moving a group forward alone, to skip inputs, does not skip them: the next
start finds Redis "behind" and reads them again. :func:`move` moves both together, for the ingest
or registry agent, with their workers stopped (it refuses while the group has members: the broker
would refuse the commit too). The subject agent's positions are shown, never moved: its input is
the internal log, and its state is rebuilt with ``creditstream replay``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import structlog
from aiokafka import TopicPartition

from agents.input_positions import commit_marker
from creditstream.connections import redis_client
from creditstream.settings import Settings
from ops.inspect import running_workers
from sinks.keys import Keys, resolve_keys
from streams import kafka
from streams.topics import INGEST_SOURCES, REGISTRATION, SUBJECT_EVENTS, Topics

log = structlog.get_logger("creditstream.positions")

MOVABLE = ("ingest", "registry")
AGENTS = (*MOVABLE, "subject")


class PositionsError(Exception):
    """A move the command refuses: a usage error (exit 2) or, ``busy``, workers still in the group,
    or ``missing``, a topic that does not exist (exit 1)."""

    def __init__(self, message: str, *, busy: bool = False, missing: bool = False):
        super().__init__(message)
        self.busy = busy
        self.missing = missing


def missing_message(topics: list[str]) -> str:
    return (f"{', '.join(topics)} {'does' if len(topics) == 1 else 'do'} not exist: `creditstream topics` "
            "creates the topics (never created here: a broker would give them its defaults)")


@dataclass
class PartitionPosition:
    agent: str
    topic: str
    partition: int
    redis: int | None      # the position Redis records (None: none recorded)
    committed: int | None  # the group's committed offset (None: none)
    end: int | None        # the log end (None: not known)
    # none recorded, but the commit carries the agent's marker: Redis lost it, and a worker reads
    # the partition again from its start (agents/input_positions.py)
    redis_lost: bool = False
    start: int | None = None  # the log start: inputs below it were deleted (retention, DeleteRecords)

    def _resumes(self) -> int | None:
        """Where a worker would read the partition from: the lower of its two positions (a Redis
        behind the commit is read again from; a position Redis lost, from the partition's start);
        None when neither is known (a new group reads from the log start)."""
        known = [0] if self.redis_lost else [p for p in (self.redis, self.committed) if p is not None]
        return min(known) if known else None

    @property
    def behind(self) -> int | None:
        """Inputs the agent has still to apply: from where it would start, or the log start if that is
        past it, to the log end."""
        if self.end is None:
            return None
        return max(self.end - max(self._resumes() or 0, self.start or 0), 0)

    @property
    def deleted(self) -> int | None:
        """Inputs between where the agent would resume and the log start: deleted before it read them
        (a worker reads from the log start; they are never applied). None when the log start is not
        known, or the group never read the partition."""
        resumes = self._resumes()
        if self.start is None or resumes is None:
            return None
        return max(self.start - resumes, 0)

    def as_dict(self) -> dict:
        return {**asdict(self), "behind": self.behind, "deleted": self.deleted}


def group_of(settings: Settings, agent: str) -> str:
    """The consumer group an agent's runner joins (streams/runner.py)."""
    return f"{settings.consumer_group}.{agent}"


def topics_of(settings: Settings, agent: str) -> list[str]:
    t = Topics(settings)
    if agent == "ingest":
        return [t.name(spec) for spec in INGEST_SOURCES]
    if agent == "registry":
        return [t.name(REGISTRATION)]
    return [t.name(SUBJECT_EVENTS)]


def field_of(topic: str, partition: int) -> str:
    """The ingest and registry agents' field for a partition (agents/input_positions.py)."""
    return f"{topic}/{partition}"


async def _committed(settings: Settings, agent: str,
                     tps: list[TopicPartition]) -> dict[TopicPartition, kafka.Committed]:
    """The group's committed offsets and their metadata, asked without joining it (an OffsetFetch)."""
    c = kafka.consumer(settings, group_id=group_of(settings, agent))
    await c.start()
    try:
        return {tp: await kafka.committed(c, tp) for tp in tps}
    finally:
        await kafka.stop_consumer(c)


async def _recorded(redis, keys: Keys, agent: str, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
    if agent == "subject":
        values = await redis.mget([keys.position(tp.partition) for tp in tps]) if tps else []
    else:
        fields = [field_of(tp.topic, tp.partition) for tp in tps]
        values = await redis.hmget(keys.input_positions(agent), fields) if fields else []
    return {tp: (int(v) if v is not None else None) for tp, v in zip(tps, values)}


async def missing_topics(settings: Settings, agents: tuple[str, ...] = AGENTS) -> list[str]:
    """The agents' input topics that do not exist (yet)."""
    existing = await kafka.existing_topics(settings)
    return [t for agent in agents for t in topics_of(settings, agent) if t not in existing]


async def show(settings: Settings, agents: tuple[str, ...] = AGENTS) -> list[PartitionPosition]:
    """Every partition of each agent's inputs: the position Redis records, the group's commit and
    the log end. A topic that does not exist has no rows (:func:`missing_topics` names it): asked for
    by name it would be created with the broker's defaults."""
    rows: list[PartitionPosition] = []
    existing = await kafka.existing_topics(settings)
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        for agent in agents:
            tps = []
            ends: dict[tuple[str, int], int] = {}
            for topic in topics_of(settings, agent):
                if topic not in existing:
                    continue
                for p, end in sorted((await kafka.log_ends(settings, topic)).items()):
                    tps.append(TopicPartition(topic, p))
                    ends[(topic, p)] = end
            committed = await _committed(settings, agent, tps)
            recorded = await _recorded(redis, keys, agent, tps)
            starts = await kafka.log_starts(settings, tps)
            marker = commit_marker(keys, agent)
            rows.extend(PartitionPosition(agent, tp.topic, tp.partition, recorded[tp], committed[tp].offset,
                                          ends.get((tp.topic, tp.partition)),
                                          recorded[tp] is None and committed[tp].metadata == marker,
                                          starts.get(tp))
                        for tp in tps)
    finally:
        await redis.aclose()
    return rows


@dataclass
class Move:
    topic: str
    partition: int
    committed: int | None  # before
    redis: int | None      # before
    to: int


async def _members(settings: Settings, group: str) -> int | None:
    """How many members the group has (None: the broker did not say)."""
    client = kafka.admin(settings)
    await client.start()
    try:
        described = await client.describe_consumer_groups([group])
    except Exception as exc:  # noqa: BLE001 - the commit's own refusal is the guard then
        log.warning("the broker did not describe the group; its commit will refuse if workers hold it",
                    group=group, error=str(exc))
        return None
    finally:
        await client.close()
    for response in described:
        for g in response.groups:
            if g[1] == group:  # (error_code, group, state, protocol_type, protocol, members, ...)
                return len(g[5] or ())
    return 0


def _select_topics(settings: Settings, agent: str, topic: str | None) -> list[str]:
    names = topics_of(settings, agent)
    if topic is None:
        return names
    prefix = Topics(settings).prefix
    for name in names:
        if topic in (name, name[len(prefix):]):
            return [name]
    raise PositionsError(f"{topic!r} is not an input topic of the {agent} agent "
                         f"({', '.join(n[len(prefix):] for n in names)})")


async def plan(settings: Settings, agent: str, *, to: str, offset: int | None = None, at_ms: int | None = None,
               topic: str | None = None, partition: int | None = None) -> list[Move]:
    """The moves ``move`` would make: ``to`` is ``end`` (skip everything not yet applied), ``start``
    (read everything again), ``offset`` (``offset``, within the log) or ``time`` (the first input
    produced at or after ``at_ms``; Apache Kafka only)."""
    if agent not in MOVABLE:
        raise PositionsError(f"the {agent} agent's positions are not moved: its input is the internal log; "
                             "rebuild its state with `creditstream replay` (docs/operations.md)")
    topics = _select_topics(settings, agent, topic)
    missing = await missing_topics(settings, (agent,))
    if all(t in missing for t in topics):
        raise PositionsError(missing_message(topics), missing=True)
    current = {(r.topic, r.partition): r for r in await show(settings, (agent,)) if r.topic in topics}
    if partition is not None:
        current = {k: r for k, r in current.items() if k[1] == partition}
        if not current:
            raise PositionsError(f"no partition {partition} in {', '.join(topics)}")
    starts = await kafka.log_starts(settings, [TopicPartition(t, p) for t, p in current])
    by_time: dict[tuple[str, int], int] = {}
    if to == "time":
        for t in topics:
            if t in missing:
                continue
            found = await kafka.offsets_at(settings, t, at_ms or 0)
            if found is None:
                raise PositionsError("--to-time needs Apache Kafka: this broker's offsets by time are not "
                                     "reliable (docs/broker.md 6); use --to-offset")
            by_time.update({(t, p): o for p, o in found.items()})
    moves = []
    for (t, p), row in sorted(current.items()):
        end = row.end if row.end is not None else 0
        start = starts.get(TopicPartition(t, p), 0)
        if to == "end":
            target = end
        elif to == "start":
            target = start
        elif to == "time":
            target = by_time[(t, p)]
        else:
            assert offset is not None
            if not start <= offset <= end:
                raise PositionsError(f"offset {offset} is outside {t}/{p}, which holds {start} to {end}")
            target = offset
        moves.append(Move(t, p, row.committed, row.redis, target))
    return moves


async def workers_running(settings: Settings, agent: str) -> str | None:
    """Why a move of ``agent``'s positions is refused now (workers running it, by their heartbeats),
    or None: :func:`move` refuses, and a dry run says it would."""
    redis = redis_client(settings)
    try:
        workers = [w for w in await running_workers(redis, Keys(settings.namespace), scan=True)
                   if agent in (w.get("agents") or (agent,))]
    finally:
        await redis.aclose()
    if not workers:
        return None
    who = ", ".join(f"{w.get('host', '?')} pid {w.get('pid', '?')}" for w in workers[:5])
    return (f"{len(workers)} worker(s) running the {agent} agent ({who}): stop the {agent} workers first (a "
            "worker killed a moment ago is counted until its heartbeat expires, within 15 s)")


async def move(settings: Settings, agent: str, moves: list[Move]) -> None:
    """Move the group's commit and the position Redis records of each partition together, with the
    agent's workers stopped (refused while a worker's heartbeat or a group member says one runs):
    the commit first (the broker refuses it while the group has members), then Redis, in one HSET.
    Should the HSET fail after the commit, a worker started then reads the partitions again from the
    old positions (safe: redeliveries); run the move again before starting the workers."""
    if not moves:
        return
    group = group_of(settings, agent)
    busy = await workers_running(settings, agent)
    if busy:
        raise PositionsError(busy, busy=True)
    members = await _members(settings, group)
    if members:
        tansu = (" On Tansu the members of a group's first generation never leave it (docs/broker.md 2): "
                 "if no worker runs, start the workers and stop them once more, then move."
                 if settings.is_tansu else "")
        raise PositionsError(f"the group {group} has {members} member(s): stop the {agent} workers first "
                             f"(a worker killed without stopping leaves the group after session_timeout_ms, "
                             f"{settings.session_timeout_ms} ms).{tansu}", busy=True)
    c = kafka.consumer(settings, group_id=group)
    await c.start()
    try:
        offsets = {TopicPartition(m.topic, m.partition): m.to for m in moves}
        c.assign(list(offsets))
        try:
            await c.commit(offsets)
        except Exception as exc:  # noqa: BLE001 - CommitFailedError and kin: a member joined meanwhile
            raise PositionsError(f"the broker refused the commit for {group} ({exc.__class__.__name__}): "
                                 f"stop the {agent} workers first", busy=True) from exc
    finally:
        await kafka.stop_consumer(c)
    redis = redis_client(settings)
    try:
        keys = Keys(settings.namespace)
        moved = {field_of(m.topic, m.partition): m.to for m in moves}
        await redis.hset(keys.input_positions(agent), mapping=moved)
        # where a start without a commit goes on too, with the mark of the record before it
        # (agents/input_positions.py; none there: a start without a commit reads from the log start)
        marks = await kafka.record_marks(settings, {TopicPartition(m.topic, m.partition): m.to - 1
                                                    for m in moves if m.to > 0})
        await redis.hset(keys.acknowledged_positions(agent), mapping={
            field_of(m.topic, m.partition): (f"{m.to}@{mark}" if mark else str(m.to))
            for m in moves for mark in (marks.get(TopicPartition(m.topic, m.partition)),)})
    finally:
        await redis.aclose()
    log.info("positions moved", agent=agent, group=group,
             moves={field_of(m.topic, m.partition): [m.committed, m.redis, m.to] for m in moves})
