"""The subject agent: applies the subject-event log to each subject's live state and emits list changes.

The log is keyed by the subject's storage id (sinks/keys.py), so one worker sees all of a subject's
events, in order. One batch is
one fenced transaction (sinks/redis_state.py):

1. watch the positions of the batch's partitions and read them with every subject it touches; a
   partition whose recorded position is behind the batch is re-fed from there (``Rewind``: Redis
   lost its tail), events below it are skipped (applied already), a position past the log's end
   stops the worker (the state is not from this log);
2. subject by subject, run the pure step (domain/engine.py) event by event: new state, outcome, list
   changes, linked events for legal representatives, timeliness; bad events are dead-lettered, never
   raised;
3. write all changed states, memberships, due instants, counters, the positions reached and the
   batch's outbox (its list changes, links and dead letters) in one MULTI/EXEC, refused if another
   worker moved a position meanwhile (a worker paused before it is fenced out and produces nothing);
4. produce the outbox, then delete it. A worker killed between 3 and 4 leaves the outbox in Redis;
   the next batch of that partition, on whichever worker, produces it first. Messages carry
   deterministic ids (``change_id``), so a re-produced one is a harmless duplicate; one paused between
   3 and 4 may produce its copies after the next owner's newer changes, and the announcements'
   ``sequence`` tells a subscriber to skip them (:func:`announcement_sequence`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import NamedTuple

import structlog
from aiokafka import ConsumerRecord, TopicPartition

from agents.input_positions import WrittenPositions, commit_marker, no_commit
from creditstream import metrics
from creditstream.settings import Settings
from domain import events
from domain.calendar import WorkingCalendar
from domain.clock import due_ms, now_ms
from domain.engine import ERROR_COUNTS, Step, derived_by, report_counts, step
from domain.facts import BASIS_VERSION
from domain.kinds import LIST_CHANGE_SCHEMA
from domain.rulebook import Rulebook
from sinks.checkpoint import Checkpoint
from sinks.kafka import KafkaSink, MessageTooLarge
from sinks.list_changes import ListChangeWriter
from sinks.redis_state import Fenced, SubjectStateSink, confirm_primary
from streams.codec import AvroCodec
from streams.kafka import Committed
from streams.runner import PositionAhead, Recorded, Rewind
from streams.topics import Topics

log = structlog.get_logger("creditstream.subject")

AHEAD_LIMIT = 5
AHEAD_PATIENCE_S = Settings.log_end_patience_s
"""The default patience: a partition whose log end stays behind the position Redis records, for
:data:`AHEAD_LIMIT` batches and this long, stops the worker (``PositionAhead``). Not at once: a
partition's new leader on Apache Kafka may report a log end (high watermark) behind its old
leader's until its followers fetch again (KIP-207), so a position written before a broker failover
can be past the end for a moment, and five quick re-fetches in that moment would have stopped the
worker."""
AHEAD_RETRY_S = (0.2, 2.0)
"""The wait before fetching such a partition again: the first, and the longest (doubled each time)."""


class SubjectAgent:
    name = "subject"

    def __init__(self, *, topics: Topics, state: SubjectStateSink, producer, codec: AvroCodec,
                 rules: Rulebook, calendar: WorkingCalendar, log_end_patience_s: float = AHEAD_PATIENCE_S):
        self.topics = topics
        self.state = state
        self.producer = producer
        self.codec = codec
        self.rules = rules
        self.calendar = calendar
        # with producer=None (a replay): the list changes the log caused, nothing encoded (they were
        # produced when the log was first applied): counted, and (storage id, change id) in log order
        # kept where ``keep_announced`` (replay --verify)
        self.announced: list[tuple[str, str]] = []
        self.announced_count = 0
        self.keep_announced = True
        self.replaying = producer is None
        # partition -> (consecutive batches whose position was past the log end, since when: monotonic s)
        self._ahead: dict[int, tuple[int, float]] = {}
        self.log_end_patience_s = log_end_patience_s
        # the group's committed offset of a partition: streams/runner.py sets it
        self.committed_offset: Callable[[TopicPartition], Awaitable[Committed]] = no_commit
        # by partition number: what this worker wrote, and when Redis is behind it
        self.written = WrittenPositions(self.name, lambda tp: tp.partition, lambda tp: self.committed_offset(tp),
                                        self.commit_marker)

    def commit_marker(self) -> str:
        """What the runner's commits carry (streams/runner.py): this generation's positions are in
        Redis (agents/input_positions.py)."""
        return commit_marker(self.state.keys, self.name)

    def source_topics(self) -> list[str]:
        return [self.topics.subject_events]

    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.producer, self.topics.dead_letters, self.name)

    async def process(self, records: list[ConsumerRecord], checkpoint: Checkpoint) -> None:
        """One batch, as one fenced transaction (sinks/redis_state.py steps 1-4)."""
        # a remote registry: the ListChange schema's id, registered once before anything is encoded
        # (a replay encodes nothing)
        if not self.replaying:
            await self.codec.ensure_writer(LIST_CHANGE_SCHEMA, self.topics.list_changes)
        decoded: list[tuple[ConsumerRecord, object]] = []
        for msg in records:
            try:
                decoded.append((msg, events.decode(msg.value if msg.value is not None else b"")))
            except events.BadEvent as exc:
                decoded.append((msg, exc))
        first: dict[int, int] = {}
        last: dict[int, int] = {}
        for msg in records:
            first.setdefault(msg.partition, msg.offset)
            last[msg.partition] = msg.offset
        # where Redis must be at least (the group's commit asked once per ownership: before the WATCH)
        floors = {} if self.replaying else \
            {p: await self.written.floor(TopicPartition(self.topics.subject_events, p)) for p in first}
        # 1. a partition whose batch does not start at offset 0 resumes a log whose state must exist
        resumed = not self.replaying and any(offset > 0 for offset in first.values())
        partition_of: dict[str, int] = {}
        split: set[str] = set()  # on two partitions at once (the topic was repartitioned): never cached
        for msg, e in decoded:
            if not isinstance(e, Exception) and partition_of.setdefault(e.subject, msg.partition) != msg.partition:
                split.add(e.subject)
        for sid in split:
            del partition_of[sid]
        loaded = await self.state.begin((e.subject for _, e in decoded if not isinstance(e, Exception)), first,
                                        resumed=resumed, partition_of=partition_of)
        try:
            await self._produce_leftovers(loaded.outboxes)
            skip_below = self._check_positions(loaded.positions, first, floors)
        except BaseException:
            await self.state.abort()
            raise
        changed: dict[str, frozenset[str] | None] = {}  # subject -> record keys touched (None: any)
        counters: dict[str, int] = {}
        outcomes: dict[str, int] = {}
        list_changes: dict[tuple[str, str], int] = {}
        kafka, dead = checkpoint.kafka, checkpoint.dead
        announced = AnnouncedChanges(self.state.keys, keep=self.keep_announced)
        changes_out: ListChangeWriter | AnnouncedChanges = (
            announced if self.replaying
            else ListChangeWriter(kafka, self.codec, self.topics.list_changes, self.state.keys))
        owners: list[int] = []  # the source partition of each message added to ``kafka``

        def count(fields: dict[str, int]) -> None:
            for field, n in fields.items():
                counters[field] = counters.get(field, 0) + n

        # 2. subject by subject, in the order of its inputs: its state decoded, the rules step on each
        # of its inputs, what each result causes, the new state stored and let go, before the next
        # subject. A state's objects are used and freed while they are in the CPU's caches (in
        # process: 92-94 against 119-124 us per input stage by stage over the whole batch;
        # docs/performance.md, thirty-eighth session). Subjects are independent: one subject's inputs
        # keep their order, and whatever a batch produces for a subject keeps its order too.
        by_subject: dict[str | None, list[tuple[ConsumerRecord, object]]] = {}
        for msg, event in decoded:
            if msg.offset >= skip_below.get(msg.partition, -1):  # below: applied already (Redis says so)
                by_subject.setdefault(None if isinstance(event, Exception) else event.subject, []).append((msg, event))
        for sid, inputs in by_subject.items():
            states = {} if sid is None else {sid: loaded.states.take(sid)}
            new = sid is not None and states[sid] is None
            stepped = [self._step(msg, event, states) for msg, event in inputs]
            for done in stepped:
                self._apply(done, changed, count, outcomes, list_changes, changes_out, kafka, dead)
                owners.extend([done.msg.partition] * (len(kafka) - len(owners)))
            del stepped
            if sid is not None and sid in changed:
                st = states[sid]
                self.state.add(sid, st, new=new, touched=changed[sid])
                next_due = (st.get("evaluation") or {}).get("next_due")
                if next_due:
                    self.state.schedule(sid, due_ms(next_due))
                else:
                    self.state.unschedule(sid)
            del states
        del by_subject

        # what the batch derived as a whole, once
        for field, n in counters.items():
            self.state.count(field, n)
        # never backwards: a batch wholly below the recorded position (re-read after a stale commit)
        positions = {p: max(last[p] + 1, loaded.positions.get(p) or 0) for p in last}
        messages = kafka.pending()
        for p, offset in positions.items():
            self.state.set_position(p, offset)
            if not self.replaying:
                self.state.set_outbox(p, [m for m, o in zip(messages, owners) if o == p])
        # 3. fenced write: refused if another worker moved these partitions since step 1
        try:
            await self.state.commit()
        except Fenced as exc:
            log.warning("batch fenced out: another worker owns these partitions now", error=str(exc),
                        partitions=sorted(first))
            raise Rewind({TopicPartition(self.topics.subject_events, p): o for p, o in first.items()},
                         reason="fenced") from exc
        self.written.written(positions)
        # 4. the runner produces what the batch caused (the checkpoint); the outbox goes once every
        # message is acknowledged
        if self.replaying:
            checkpoint.after_flush(lambda: self._announced(announced))
        else:
            checkpoint.after_flush(lambda: self.state.clear_outbox(positions))
        checkpoint.after_flush(lambda: self._count(outcomes, list_changes))

    def _announced(self, announced: AnnouncedChanges) -> None:
        """A replay's batch is written: its list changes count (and are kept, where asked)."""
        self.announced.extend(announced.ids)
        self.announced_count += announced.count

    @staticmethod
    def _count(outcomes: dict[str, int], list_changes: dict[tuple[str, str], int]) -> None:
        for outcome, n in outcomes.items():
            metrics.OUTCOMES.labels(outcome).inc(n)
        for (kind, transition), n in list_changes.items():
            metrics.LIST_CHANGES.labels(kind, transition).inc(n)

    def _step(self, msg, event, states) -> Stepped:
        """The rules step on one event (``states`` moves on), and what of it the effects need: not
        the states themselves, which a batch of a hot subject's inputs would otherwise keep alive,
        every version of them, until the batch's effects are done."""
        if isinstance(event, Exception):
            return Stepped(msg, event, None)
        sid = event.subject
        before = states.get(sid)
        if before is not None:
            derivation = derived_by(before)
            if derivation is not None and derivation > BASIS_VERSION:
                raise StateFromNewerVersion(derivation)
        try:
            result = step(before, event, self.rules, self.calendar)
        except Exception as exc:  # noqa: BLE001 - a bug on one event must not stop the subject log
            log.exception("subject event failed", origin=event.origin, type=type(event).__name__)
            return Stepped(msg, event, exc)
        if result.changes:
            announcement_sequence(before, result.state, result.changes)
        states[sid] = result.state
        return Stepped(msg, event, result._replace(state={}), _lists_of(before), _lists_of(result.state),
                       result.state["id_kind"])

    def _apply(self, done: Stepped, changed, count, outcomes, list_changes, changes_out, kafka, dead) -> None:
        """What one stepped event causes: counters, list changes, list members, links, dead letters."""
        msg, event, result = done.msg, done.event, done.result
        if isinstance(event, Exception):
            dead.add(msg, "bad-subject-event", str(event))
            return
        if isinstance(result, Exception):
            dead.add(msg, "processing-error", f"{type(result).__name__}: {result}")
            count(ERROR_COUNTS)
            return
        assert result is not None
        sid = event.subject
        if result.outcome == "invalid":  # decoded and validated, but the rules cannot use it
            dead.add(msg, f"invalid-{msg_type(event)}", "the rules core could not apply it")
            count(report_counts(event, result))
            return
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        if result.outcome == "redelivered":
            return
        # duplicates too: the state remembers their origin
        before_touched = changed.get(sid, frozenset())
        changed[sid] = None if before_touched is None or result.touched is None else before_touched | result.touched
        count(report_counts(event, result))
        for change in result.changes:
            changes_out.add(change, done.id_kind, event.event_ms)
            key = (change["kind"], change["transition"])
            list_changes[key] = list_changes.get(key, 0) + 1
        if result.changes:
            self._memberships(done.lists_before, done.lists_after, sid)
        if self.replaying:
            return  # its links are in the log already, as the events that follow
        for link in result.links:
            try:
                kafka.add(self.topics.subject_events, events.encode(link),
                          key=self.state.keys.storage_id(link.subject).encode(), timestamp_ms=link.event_ms)
            except MessageTooLarge as exc:  # an input error: kept as a dead letter, never retried
                dead.add(msg, "too-large", f"its link to the legal representative would be {exc}")

    async def _produce_leftovers(self, outboxes: dict) -> None:
        """An earlier batch of these partitions wrote its outbox and may have died before producing
        it: produce it now (its messages carry deterministic ids; a duplicate is harmless)."""
        if not outboxes or self.producer is None:
            return
        sink = KafkaSink(self.producer)
        for messages in outboxes.values():
            for m in messages:
                sink.add(m.topic, m.value, key=m.key, headers=m.headers, timestamp_ms=m.timestamp_ms)
        n = await sink.flush()
        log.info("produced the outbox of an earlier batch", messages=n, partitions=sorted(outboxes))

    def _check_positions(self, positions: dict[int, int | None], first: dict[int, int],
                         floors: dict[int, int] | None = None) -> dict[int, int]:
        """Where to skip (already applied) or rewind (Redis is behind what was written: re-feed from
        the log). Behind means behind ``floors`` (this worker's last write, or the group's commit:
        agents/input_positions.py ``WrittenPositions``), not behind the batch's first offset: a log
        may hold offsets no consumer sees (records deleted by retention or DeleteRecords, a
        transaction's marker), and the batch then begins past the recorded position with nothing
        lost. A replay (no floors) compares with the first offset."""
        floors = floors or {}
        skip_below: dict[int, int] = {}
        rewind: dict[int, int] = dict(self.written.behind({p: positions.get(p) for p in first if p in floors
                                                           and positions.get(p) is None}, floors))
        ahead: dict[int, tuple[int, int]] = {}  # partition -> (position, log end)
        for p, offset in first.items():
            pos = positions.get(p)
            if pos is None:
                continue  # never written for this generation (the consumer's offset is the start), or gone
            high = self.highwater(p)
            if high is not None and pos > high:
                # the log may simply have grown since this worker's last fetch (another worker wrote
                # that position), or a new leader reports a log end behind its old leader's for a
                # moment (AHEAD_PATIENCE_S): fetch again; only a position that stays past the end is
                # an error
                self._still_ahead(p, pos, high)
                ahead[p] = (pos, high)
                rewind[p] = offset
                continue
            self._ahead.pop(p, None)
            if pos < floors.get(p, offset):
                rewind[p] = pos
            elif pos > offset:
                skip_below[p] = pos
        if ahead and not self.replaying:
            metrics.REWINDS.labels(self.name).inc(len(ahead))
            waited = max(self._ahead[p][0] for p in ahead)
            delay = min(AHEAD_RETRY_S[0] * 2 ** (waited - 1), AHEAD_RETRY_S[1])
            log.warning("the log ends before the position Redis records: fetching again", retry_in_s=delay,
                        partitions={p: {"position": pos, "log_end": high} for p, (pos, high) in ahead.items()},
                        stops_after_s=self.log_end_patience_s)
            raise Rewind({TopicPartition(self.topics.subject_events, p): rewind.get(p, o) for p, o in first.items()},
                         reason="log-end-behind", delay_s=delay)
        if rewind and not self.replaying:
            self.written.rewound(rewind)  # from there on, Redis is expected where it is now
            log.warning("Redis is behind the log: re-feeding from the recorded positions", positions=rewind,
                        batch_starts={p: first[p] for p in rewind})
            raise Rewind({TopicPartition(self.topics.subject_events, p): rewind.get(p, o) for p, o in first.items()},
                         reason="redis-behind")
        return skip_below

    def _still_ahead(self, p: int, pos: int, high: int) -> int:
        """Partition ``p``'s position ``pos`` is past its log end ``high`` once more: how many checks in
        a row found it so; raises :class:`PositionAhead` once that is :data:`AHEAD_LIMIT` checks over
        ``log_end_patience_s``."""
        now = time.monotonic()
        checks, since = self._ahead.get(p, (0, now))
        self._ahead[p] = (checks + 1, since)
        if checks + 1 >= AHEAD_LIMIT and now - since >= self.log_end_patience_s:
            raise PositionAhead(
                f"Redis records position {pos} on {self.topics.subject_events}[{p}] but the log ends at "
                f"{high} (for {now - since:.0f} s): the state is not from this log (topic recreated? an "
                f"embedded Tansu broker started anew? wrong Redis?). Point the workers at the Redis of this "
                f"log; if the log itself was lost, this state can be neither rebuilt from it (a `replay --switch` "
                f"is refused) nor kept in step with a new one: back it up, start from an empty Redis and "
                f"send the inputs again (docs/operations.md, Redis ahead of the log)")
        return checks + 1

    def _ahead_while_idle(self, positions: Mapping[int, int | None]) -> None:
        """Every position check, busy or idle (streams/runner.py): a partition whose recorded position
        is past the log end its consumer last saw. A batch's check (:meth:`_check_positions`) sees it
        only when a batch comes; none comes to a consumer started at a position past the log end when
        the broker answers such a fetch with nothing (Tansu), or sitting at the group's commit with no
        new input (Redis ahead of a log whose topic was recreated, or the wrong Redis, while the
        workers were stopped): it waited for ever, with /health ok. The same patience applies.
        ``positions``: those the check read (:meth:`positions_behind`)."""
        for p, pos in positions.items():
            high = self.highwater(p)
            if pos is None or high is None:
                continue
            if pos <= high:
                self._ahead.pop(p, None)
                continue
            checks = self._still_ahead(p, pos, high)
            # not at the first check: a worker resumed after a pause compares the positions the next
            # owner wrote with the log ends it saw before the pause, until its consumer fetches again
            # (seen after every SIGCONT, gone at the next check)
            if checks == 2 or checks % AHEAD_LIMIT == 0:
                log.warning("the log ends before the position Redis records: waiting for the log to reach it",
                            partition=p, position=pos, log_end=high, stops_after_s=self.log_end_patience_s)

    def forget(self, revoked: set[TopicPartition]) -> None:
        """streams/runner.py, in a rebalance: partitions this worker lost (if they come back,
        another worker may have written them meanwhile: their floor is the group's commit again; a
        position past the log end seen before is judged afresh)."""
        self.written.forget(revoked)
        for tp in revoked:
            self._ahead.pop(tp.partition, None)

    async def recorded_positions(self, partitions: list[TopicPartition]) -> dict[TopicPartition, Recorded | None]:
        """streams/runner.py, for partitions the group has no commit for: the position each partition's
        state records (the next subject event it has not applied; the agent starts there whatever
        the commit says, so no mark is checked)."""
        if self.replaying or not partitions:
            return {}
        got = await self.state.positions([tp.partition for tp in partitions])
        return {tp: (Recorded(pos) if pos is not None else None) for tp in partitions
                for pos in (got.get(tp.partition),)}

    async def positions_behind(self, partitions: list[TopicPartition]) -> Rewind | None:
        """streams/runner.py, every few seconds, for all this agent's partitions: those whose
        position Redis records behind what was written (agents/input_positions.py
        ``WrittenPositions.check``). Redis lost the writes of their last batches, and a partition
        with no new input would never show it: a subject would keep its state from before them (and,
        if the timer's removal of its due entry survived, no tick would come for it)."""
        if self.replaying or not partitions:
            return None

        async def recorded(parts: list[int]) -> dict[int, int | None]:
            got = await self.state.positions(parts)  # read after the floors: a batch may write meanwhile
            self._ahead_while_idle(got)
            # positions this worker wrote, gone: Redis lost them all (no sentinel: stop loudly, as a
            # batch would, docs/operations.md "Redis empty"), or more than its tail (re-read them).
            # So too a partition the group committed past its start (its state was written before
            # that commit): where the commit's marker does not come back (Tansu drops a commit's
            # metadata: docs/broker.md 11), a worker started on a flushed Redis served the empty
            # state, /health ok, until an input came
            if any(pos is None and (p in self.written.mine or self.written.wrote.get(p, 0) > 0)
                   for p, pos in got.items()) and not await self.state.has_state():
                await self.state.confirm_lost()  # StateLost, or transient if a replica answered
            return got

        behind = await self.written.check(partitions, recorded, self.state.first_positions,
                                          lambda: confirm_primary(self.state.redis))
        if not behind:
            return None
        log.warning("Redis is behind the log: re-feeding from the recorded positions", positions=behind,
                    written={p: self.written.wrote.get(p) for p in behind})
        self.written.rewound(behind)
        return Rewind({TopicPartition(self.topics.subject_events, p): pos for p, pos in behind.items()},
                      reason="redis-behind")

    def highwater(self, partition: int) -> int | None:
        """The log end of a partition, when the runner knows it (set by streams/runner.py)."""
        return None

    def _memberships(self, lists_before, lists_after, sid: str) -> None:
        """The list member sets follow the subject's situation on its clock (a withdrawn entry
        takes the subject out of a list as an exit does)."""
        was, now = set(lists_before), set(lists_after)
        for name in now - was:
            self.state.add_to_list(name, sid)
        for name in was - now:
            self.state.remove_from_list(name, sid)


def announcement_sequence(before: dict | None, after: dict, changes: list[dict]) -> int:
    """Number one announcement of a subject (the list changes of one input): its ``sequence``, kept in
    the subject's state and carried by each of its changes (schemas/list_change.avsc), above the
    subject's previous one and not below this process's clock in microseconds.

    What it is for: a worker paused (SIGSTOP, a frozen VM, a long GC pause) after its fenced state
    write and before it produced the batch's changes finds, on resuming, that another worker has
    taken the partitions over, produced that batch's outbox and then newer changes (a withdrawal of
    one of them, say); it still produces its copies, after the newer ones (seen). No check before
    the produce closes that window (the pause can fall after the check), and the broker's
    transactions are not what creditstream rests on, so the changes carry their order instead: a
    subscriber skips a change whose sequence is below the highest it applied for the subject
    (docs/events.md, Folding). The stale copies carry the paused worker's sequence, which the newer
    announcements exceed: each is above the state's last, and the state the new owner read is the
    paused worker's. The clock only keeps a rebuilt state's (a replay's, a Redis restored from an
    older snapshot) next announcements above what was sent before it: a sequence is never compared
    across subjects."""
    last = (before or {}).get("sequence") or 0
    sequence = max(int(last) + 1, now_ms() * 1000)
    after["sequence"] = sequence
    for change in changes:
        change["sequence"] = sequence
    return sequence


class StateFromNewerVersion(RuntimeError):
    """A subject's state derived by a newer creditstream than this worker (its ``basis`` version is
    above this code's): derived again here, under this version's rules, it would withdraw what the
    newer version announced (seen in a rollback: an approved repair un-applied, silently). The
    worker stops, loudly (not the input's fault: no dead letter)."""

    def __init__(self, derived_by: int):
        super().__init__(
            f"a subject's state was derived by a newer creditstream (derivation {derived_by}; this worker's is "
            f"{BASIS_VERSION}): this version would derive it again under its own rules and withdraw what the "
            f"newer one announced. Run the newer version, or go back with a Redis backup from before the "
            f"upgrade (docs/operations.md, Upgrading creditstream)")


class Stepped(NamedTuple):
    """One event of a batch after the rules step (``SubjectAgent._step``)."""
    msg: ConsumerRecord
    event: object  # a subject event, or the BadEvent it could not be decoded for
    result: Step | Exception | None  # the step (its state left out), the rules core's failure, or None
    lists_before: Mapping = {}  # the lists the subject was on before the event (its situation's)
    lists_after: Mapping = {}
    id_kind: str = ""


def _lists_of(state: dict | None) -> Mapping:
    return ((state or {}).get("evaluation") or {}).get("lists") or {}


class AnnouncedChanges:
    """A replay's list-change sink: it encodes nothing (ListChangeWriter's Avro encoding was 6% of a
    replay's time, for messages never sent) and counts the changes; it keeps each change's (storage
    id, change id) only when ``keep`` (``replay --verify`` compares them with the list-change topic).
    Kept, they grow with the log, ~200 bytes a change in the replay's processes."""

    def __init__(self, keys, keep: bool = True):
        self.keys = keys
        self.keep = keep
        self.ids: list[tuple[str, str]] = []
        self.count = 0

    def add(self, change: dict, subject_kind: str, event_ms: int) -> None:
        self.count += 1
        if self.keep:
            self.ids.append((self.keys.storage_id(change["subject"]), change["change_id"]))


def msg_type(event) -> str:
    return type(event).__name__.removesuffix("Event").lower()
