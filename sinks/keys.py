"""The Redis key layout: every key creditstream reads or writes is built here.

Layout (``ns`` is ``Settings.namespace``, default ``cs``; ``gen`` is a state generation; ``sid`` a
subject's storage id, below):

=====================================  ==========  ===============================================
key                                    type        what
=====================================  ==========  ===============================================
``{ns}:generation``                    string      the generation readers use (default ``live``)
``{ns}:{gen}:subject:{sid}``           string      a subject's state (domain/state.py), compact (zstd)
                                                   or JSON: sinks/state_codec.py owns the form
``{ns}:{gen}:subject-records:{sid}``   hash        a subject stored split (more than
                                                   ``state_codec.SPLIT_RECORDS`` records): record key
                                                   -> that record's part of the state; the subject
                                                   key then holds the rest (sinks/state_codec.py)
``{ns}:{gen}:subjects``                set         storage ids of every subject with state
``{ns}:{gen}:list:{list}``             set         storage ids of a list's members (blacklist:<domain>, ...)
``{ns}:{gen}:lists``                   set         the names of the lists that ever had members, and
                                                   ``*`` once complete (:data:`INDEX_COMPLETE`)
``{ns}:{gen}:stats``                   hash        counters: records by unit, outcome, ...
``{ns}:{gen}:due``                     zset        storage id scored by its subject's next due instant (ms)
``{ns}:{gen}:sentinel``                string      written with every state batch; its absence while
                                                   the log has been consumed means Redis lost data
``{ns}:idx``                           hash        ``<kind>:<number>`` -> USCC, kinds ``org`` (the
                                                   9-char organisation code), ``reg_no``,
                                                   ``tax_no``, ``other`` (domain/attach.py)
``{ns}:parked:{kind}:{number}``        hash        #content hash -> parked record (JSON), waiting for the
                                                   registry to learn ``<kind>:<number>``; #content hash|s ->
                                                   its sightings (ms and origin a line, at most 32); fields
                                                   origin#content hash: parked before (one per re-send)
``{ns}:parked:keys``                   set         every ``<kind>:<number>`` with parked records
``{ns}:parked:counts``                 hash        ``sightings_let_go``: re-sends of parked records
                                                   past the sightings kept (inputs accounted for)
``{ns}:attached``                      hash        #content hash -> ``USCC<TAB>move generation<TAB>1 while
                                                   the last move waits for its acknowledgement`` of a
                                                   decision attached through a legacy number;
                                                   #hash|e its subject event (JSON), #hash|k its lookup
                                                   keys, #hash|h the USCCs it was ever attached to,
                                                   #hash|s its sightings, #hash|d while a move waits:
                                                   the re-sends sent straight to where it goes (no
                                                   copy of them with the move; sinks/registry_index.py)
``{ns}:attached-by:{kind}:{number}``   set         the #content hashes attached through that number
``{ns}:attached:pending``              set         numbers with a move not acknowledged yet (cleared
                                                   lazily when the number is next taught)
``{ns}:attached:follow``               hash        ``since``, ``last``, ``caught_up`` (ms), ``rewinds``,
                                                   ``agent``: Redis lost the index's last writes;
                                                   ``creditstream follow-numbers`` to run (cleared by a
                                                   run begun after ``last``)
``{ns}:positions:{agent}``             hash        ``topic/partition`` -> next offset the ingest or
                                                   registry agent applied (written with its effects)
``{ns}:positions-acked:{agent}``       hash        the same once its messages are acknowledged
``{ns}:replay:{gen}``                  hash        progress of a replay building ``gen``
``{ns}:replays``                       set         the replays started and not yet seen ended, and
                                                   ``*`` once complete (:data:`INDEX_COMPLETE`)
``{ns}:worker:{identity}``             string      a running worker's heartbeat (JSON; expires)
``{ns}:workers``                       zset        worker identity scored by its last heartbeat (ms)
``{ns}:dlq:redriven``                  hash        dead letter ``<partition>:<offset>`` -> its
                                                   last re-drive (JSON: at, by, fixed, target;
                                                   ops/dlq.py)
``{ns}:checks``                        hash        credit checks delivered to the check-audit
                                                   topic, ``<matter>:<outcome>`` -> count, and
                                                   ``dropped`` (sinks/check_audit.py)
``{ns}:checks-written:{writer}``       string      the id of the last write of one API process's
                                                   counters Redis applied (expires after a day)
``{ns}:placement``                     hash        topic -> the partition count its keyed messages
                                                   are placed over (streams/placement.py)
``{ns}:placement:changes``             hash        ``<topic> <count>`` -> the log's ends when the
                                                   count was raised to ``<count>`` (JSON;
                                                   ops/partitions.py, read by a replay)
=====================================  ==========  ===============================================

Subject state and lists live in a generation so that ``creditstream replay`` can rebuild them
aside and switch readers over by setting ``{ns}:generation`` in one command. The identifier index
and parked records belong to ingestion and are shared by all generations.

Subjects are stored under their **storage id** (:func:`storage_id`, the one mapping): an
organisation's USCC as it is (public information), any other subject id (a natural person's ID
number, 18 or 15 digits) as its keyed pseudonym ``p.`` + 32 hex chars of HMAC-SHA256 under the
``pseudonym_key`` setting (RULES.md 7). Every key name above that embeds a subject (``{sid}``), every
member of ``subjects``, ``list:*`` and ``due``, and the Kafka message key of the subject-event and
list-change topics is a storage id, so a dump of Redis keys and members or of the message keys shows
no ID number. The look-up stays inside the state: a subject's state (the value) keeps its clear id,
and readers map the id a user types with the same function. The mapping is deterministic (same key,
same pseudonym in every process), so partitioning stays per subject; it is idempotent (a storage id
maps to itself), so ``Keys.subject()`` takes either a subject id or a member read from a set.
Changing ``pseudonym_key`` makes every person's state unreachable until ``creditstream replay
--switch`` rebuilds it (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from domain.identifiers import USCC_ALPHABET, may_be_resident_id

DEFAULT_GENERATION = "live"
# a member of an index set (``Keys.list_names``, ``Keys.replays``): the set names everything it
# indexes; written when the set is started (a new generation, a first replay), or once the keys an
# earlier version wrote without it were scanned for; without it readers scan the keyspace
INDEX_COMPLETE = "*"

PSEUDONYM_PREFIX = "p."
_PSEUDONYM = re.compile(r"p\.[0-9a-f]{32}", re.ASCII)
_USCC_CHARS = frozenset(USCC_ALPHABET)


class PseudonymKeyMissing(RuntimeError):
    """A subject that may be a natural person has no pseudonym without the ``pseudonym_key`` setting."""


_STORAGE_IDS: dict[str, dict[str, str]] = {}  # pseudonym key -> subject id -> storage id
STORAGE_IDS_KEPT = 1 << 16


def storage_id(subject_id: str, pseudonym_key: str) -> str:
    """The id a subject is stored under (Redis key names and set members, Kafka message keys).

    An organisation's USCC (18 chars of the USCC alphabet that cannot be an ID number) is kept as it
    is; anything else (a resident ID number, 18 or 15 digits, or an unexpected id) becomes
    ``p.`` + the first 32 hex chars of HMAC-SHA256(``pseudonym_key``, id). A storage id maps to
    itself. Raises :class:`PseudonymKeyMissing` for an id that needs the key when none is set.

    Remembered per pseudonym key in plain dicts of str, emptied when full (not ``lru_cache``: it keys
    a call by a new tuple, and each new tuple made its dict a young object again, so that every
    collector round, creditstream/heap.py, walked all its entries: 12-17 ms a round past 100,000
    subjects; a dict of str is never tracked)."""
    known = _STORAGE_IDS.get(pseudonym_key)
    if known is None:
        known = _STORAGE_IDS[pseudonym_key] = {}
    sid = known.get(subject_id)
    if sid is None:
        sid = _storage_id(subject_id, pseudonym_key)
        if len(known) >= STORAGE_IDS_KEPT:
            known.clear()
        known[subject_id] = sid
    return sid


def _storage_id(subject_id: str, pseudonym_key: str) -> str:
    if _PSEUDONYM.fullmatch(subject_id):
        return subject_id
    if len(subject_id) == 18 and _USCC_CHARS.issuperset(subject_id) and not may_be_resident_id(subject_id):
        return subject_id
    require_pseudonym_key(pseudonym_key)
    digest = hmac.new(pseudonym_key.encode(), subject_id.encode(), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + digest[:32]


def require_pseudonym_key(pseudonym_key: str) -> str:
    """``pseudonym_key``, or :class:`PseudonymKeyMissing` if it is empty (the workers and the replay
    refuse to start without it: they would have nowhere to store a natural person)."""
    if not pseudonym_key:
        raise PseudonymKeyMissing(
            "the pseudonym_key setting is not set: a natural person's ID number is never stored in clear "
            "(RULES.md 7); set CREDITSTREAM_PSEUDONYM_KEY (a random secret, e.g. `openssl rand -hex 32`; "
            "the embedded stack generates one), the same in every worker and reader")
    return pseudonym_key


def is_pseudonym(stored: str) -> bool:
    """True for a storage id that is a pseudonym (its subject's clear id is in its state only)."""
    return bool(_PSEUDONYM.fullmatch(stored))


@dataclass(frozen=True)
class Keys:
    namespace: str = "cs"
    generation: str = DEFAULT_GENERATION
    pseudonym_key: str = field(default="", repr=False)
    """The secret of :func:`storage_id` (``Settings.pseudonym_key``): needed for subjects that may be
    natural persons."""

    def storage_id(self, subject_id: str) -> str:
        """The subject's storage id (:func:`storage_id`): set members, due entries, message keys."""
        return storage_id(subject_id, self.pseudonym_key)

    # --- generation-scoped state ---------------------------------------------------------
    @property
    def gen_prefix(self) -> str:
        return f"{self.namespace}:{self.generation}:"

    def subject(self, subject_id: str) -> str:
        """The state key of a subject, given its id or its storage id (a member of a set)."""
        return f"{self.gen_prefix}subject:{self.storage_id(subject_id)}"

    def subject_records(self, subject_id: str) -> str:
        """The per-record parts of a subject stored split (sinks/state_codec.py): a hash, record key
        -> the record's entry, facts, publicity track and publicity view. Written in the same
        transaction as ``subject()``."""
        return f"{self.gen_prefix}subject-records:{self.storage_id(subject_id)}"

    @property
    def subjects(self) -> str:
        return f"{self.gen_prefix}subjects"

    def list_members(self, list_name: str) -> str:
        return f"{self.gen_prefix}list:{list_name}"

    @property
    def list_prefix(self) -> str:
        return f"{self.gen_prefix}list:"

    @property
    def list_names(self) -> str:
        """A set: the name of every list of this generation that ever had a member, and
        :data:`INDEX_COMPLETE` once it names them all (written with the memberships, in the same
        transaction): readers find the lists without scanning the keyspace (ops/inspect.py)."""
        return f"{self.gen_prefix}lists"

    @property
    def stats(self) -> str:
        return f"{self.gen_prefix}stats"

    @property
    def sentinel(self) -> str:
        return f"{self.gen_prefix}sentinel"

    def position(self, partition: int) -> str:
        """Next offset of subject-event partition ``partition`` to apply: written with the state it
        produced, in the same transaction (the subject agent's fencing token)."""
        return f"{self.gen_prefix}position:{partition}"

    @property
    def positions_pattern(self) -> str:
        """The keys of :meth:`position`, as the subject agent's commits name them (agents/input_positions.py
        ``commit_marker``)."""
        return f"{self.gen_prefix}position:*"

    def outbox(self, partition: int) -> str:
        """Messages a partition's last applied batch must produce (list changes, links, dead
        letters), written with its state and produced after it (transactional outbox)."""
        return f"{self.gen_prefix}outbox:{partition}"

    @property
    def timer_lease(self) -> str:
        """Which worker's timer fires ticks (a lease its holder renews every round)."""
        return f"{self.gen_prefix}timer:lease"

    @property
    def due(self) -> str:
        return f"{self.gen_prefix}due"

    # --- shared by all generations ------------------------------------------------------
    @property
    def current_generation(self) -> str:
        return f"{self.namespace}:generation"

    @property
    def id_index(self) -> str:
        return f"{self.namespace}:idx"

    @property
    def id_index_versions(self) -> str:
        """Lookup key -> the version of the mapping ``id_index`` holds (domain/attach.py
        ``mapping_version``): a mapping is replaced only by a newer one, whatever the arrival order."""
        return f"{self.namespace}:idx:v"

    def acknowledged_positions(self, agent: str) -> str:
        """A hash, ``"topic/partition"`` -> the next offset of that input partition whose batch
        ``agent`` (ingest, registry) has applied *and* whose messages the broker has acknowledged
        (written after the produce, agents/input_positions.py ``acknowledged``): where a partition
        the group has no commit for starts. ``input_positions`` is written before the produce, so
        starting there could skip inputs whose subject events were never delivered."""
        return f"{self.namespace}:positions-acked:{agent}"

    def input_positions(self, agent: str) -> str:
        """A hash, ``"topic/partition"`` -> the next offset of that department (or registration)
        partition whose batch ``agent`` (ingest, registry) has applied to the index and the parked
        records: written in the same script as the batch's writes (sinks/registry_index.py), so a
        Redis that lost its last writes says where to re-read from."""
        return f"{self.namespace}:positions:{agent}"

    def parked(self, lookup_key: str) -> str:
        return f"{self.namespace}:parked:{lookup_key}"

    @property
    def parked_keys(self) -> str:
        return f"{self.namespace}:parked:keys"

    @property
    def parked_counts(self) -> str:
        """Counters of the parked records: ``sightings_let_go``, re-sends of a parked record past the
        sightings it keeps (each an input accounted for, as a duplicate of it)."""
        return f"{self.namespace}:parked:counts"

    @property
    def attached(self) -> str:
        """Decisions attached through a legacy number, to follow the number's moves."""
        return f"{self.namespace}:attached"

    @property
    def attached_pending(self) -> str:
        return f"{self.namespace}:attached:pending"

    @property
    def numbers_to_follow(self) -> str:
        """Set when the ingest or registry agent found Redis behind the positions it wrote (Redis lost
        the index's last writes): ``since``, ``last`` (ms: noted first and last), ``caught_up`` (ms: the
        latest re-read that reached where its agent had been), ``rewinds``, ``agent``; cleared by a run of
        ``creditstream follow-numbers`` that began after ``last`` (ops/follow_numbers.py)."""
        return f"{self.namespace}:attached:follow"

    def attached_by(self, lookup_key: str) -> str:
        return f"{self.namespace}:attached-by:{lookup_key}"

    def replay_progress(self, generation: str) -> str:
        return f"{self.namespace}:replay:{generation}"

    def replay_alive(self, generation: str) -> str:
        """``1``, renewed, while a replay into ``generation`` runs; ``0`` once it ended; gone (expired)
        when the replay was killed."""
        return f"{self.namespace}:replay-alive:{generation}"

    @property
    def replay_pattern(self) -> str:
        return f"{self.namespace}:replay:*"

    @property
    def replays(self) -> str:
        """A set: the generations of the replays started and not yet seen ended, which the next
        replay checks for interrupted ones (ops/replay.py ``mark_abandoned``)."""
        return f"{self.namespace}:replays"

    @property
    def dlq_redriven(self) -> str:
        return f"{self.namespace}:dlq:redriven"

    @property
    def check_counts(self) -> str:
        """Credit checks recorded on the check-audit topic, ``<matter>:<outcome>`` -> count, and
        ``dropped`` (audit records the API could not deliver): sinks/check_audit.py."""
        return f"{self.namespace}:checks"

    def check_counts_written(self, writer: str) -> str:
        """The last write of one API process's counters to :attr:`check_counts` that Redis applied
        (its id): a write sent again after a timeout is not counted twice (sinks/check_audit.py);
        expires a day after the process's last write."""
        return f"{self.namespace}:checks-written:{writer}"

    @property
    def placement(self) -> str:
        """A hash: topic -> the partition count creditstream places that topic's keyed messages over
        (streams/placement.py), shared by every generation: it describes the log."""
        return f"{self.namespace}:placement"

    @property
    def placement_changes(self) -> str:
        """A hash: ``<topic> <count>`` -> where the topic's log ended when its placement was raised to
        that count (JSON; ops/partitions.py): a subject's messages before it sit on the partition of
        the count before. A replay reads the log span by span (streams/placement.py ``spans``)."""
        return f"{self.namespace}:placement:changes"

    def worker(self, identity: str) -> str:
        """A running worker's heartbeat (JSON, expires unless renewed): ``replay --switch`` refuses
        while any exists."""
        return f"{self.namespace}:worker:{identity}"

    @property
    def worker_pattern(self) -> str:
        return f"{self.namespace}:worker:*"

    @property
    def workers(self) -> str:
        """A sorted set: each worker's identity (its heartbeat key is ``worker(identity)``) scored by
        the time (ms) of its last heartbeat: readers find the running workers without scanning the
        keyspace (ops/inspect.py ``running_workers``). The heartbeat key's expiry says whether it runs."""
        return f"{self.namespace}:workers"

    def with_generation(self, generation: str) -> Keys:
        return Keys(self.namespace, generation, self.pseudonym_key)


async def resolve_keys(redis, namespace: str, pseudonym_key: str = "") -> Keys:
    """The keys of the generation readers should use now (``pseudonym_key``: to find a natural
    person by ID number; members read from the sets need none)."""
    gen = await redis.get(Keys(namespace).current_generation)
    if isinstance(gen, bytes):
        gen = gen.decode()
    return Keys(namespace, gen or DEFAULT_GENERATION, pseudonym_key)


async def list_names(redis, keys: Keys) -> list[str]:
    """The names of the generation's lists that have (or had) members, sorted: from the
    ``list_names`` set when it is complete; else (a generation written before the set existed, and
    no worker has started on it since) by scanning the keyspace for list keys, which at a million
    subjects reads over a million keys (about 0.8 s of the one Redis thread)."""
    names = {m.decode() if isinstance(m, bytes) else m for m in await redis.smembers(keys.list_names)}
    if INDEX_COMPLETE in names:
        names.discard(INDEX_COMPLETE)
        return sorted(names)
    prefix = keys.list_prefix
    return sorted(names | {(k.decode() if isinstance(k, bytes) else k)[len(prefix):]
                           async for k in redis.scan_iter(match=prefix + "*", count=1000)})


async def complete_indexes(redis, keys: Keys, *, fresh_generation: bool = False) -> None:
    """Make the index sets complete (:data:`INDEX_COMPLETE`): the generation's ``list_names`` and the
    namespace's ``replays``. What an earlier version wrote without them is found by one scan of the
    keyspace, done once (a worker starting; under a second at a million subjects); from then on every
    batch adds the lists it enters (sinks/redis_state.py) and every replay itself (ops/replay.py).
    ``fresh_generation``: a replay starting ``keys``' generation, which has no lists yet."""
    pipe = redis.pipeline(transaction=False)
    pipe.sismember(keys.list_names, INDEX_COMPLETE)
    pipe.sismember(keys.replays, INDEX_COMPLETE)
    lists_done, replays_done = await pipe.execute()
    write_lists = fresh_generation or not lists_done
    scan_lists = not (fresh_generation or lists_done)  # a fresh generation has no lists to look for
    if replays_done and not write_lists:
        return
    lists: set[str] = set()
    replays: set[str] = set()
    if scan_lists or not replays_done:  # what an earlier version wrote without the sets
        list_prefix, replay_prefix = keys.list_prefix, keys.replay_progress("")
        async for raw in redis.scan_iter(match=f"{keys.namespace}:*", count=1000):
            key = raw.decode() if isinstance(raw, bytes) else raw
            if key.startswith(list_prefix):
                lists.add(key[len(list_prefix):])
            elif key.startswith(replay_prefix):
                replays.add(key[len(replay_prefix):])
    pipe = redis.pipeline(transaction=False)
    if write_lists:
        pipe.sadd(keys.list_names, INDEX_COMPLETE, *sorted(lists))
    if not replays_done:
        pipe.sadd(keys.replays, INDEX_COMPLETE, *sorted(replays))
    await pipe.execute()
