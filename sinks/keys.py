"""The Redis key layout: every key creditstream reads or writes is built here.

Layout (``ns`` is ``Settings.namespace``, default ``cs``; ``gen`` is a state generation):

=====================================  ==========  ===============================================
key                                    type        what
=====================================  ==========  ===============================================
``{ns}:generation``                    string      the generation readers use (default ``live``)
``{ns}:{gen}:subject:{id}``            string      a subject's state, JSON (domain/subject.py)
``{ns}:{gen}:subjects``                set         ids of every subject with state
``{ns}:{gen}:list:{list}``             set         members of a list (blacklist:<domain>, ...)
``{ns}:{gen}:stats``                   hash        counters: records by unit, outcome, ...
``{ns}:{gen}:due``                     zset        subject id scored by its next due instant (ms)
``{ns}:{gen}:sentinel``                string      written with every state batch; its absence while
                                                   the log has been consumed means Redis lost data
``{ns}:idx``                           hash        ``<kind>:<number>`` -> USCC, kinds ``org`` (the
                                                   9-char organisation code), ``reg_no``,
                                                   ``tax_no``, ``other`` (domain/attach.py)
``{ns}:parked:{kind}:{number}``        hash        origin id -> parked record (JSON), waiting for
                                                   the registry to learn ``<kind>:<number>``
``{ns}:parked:keys``                   set         every ``<kind>:<number>`` with parked records
``{ns}:replay:{gen}``                  hash        progress of a replay building ``gen``
``{ns}:dlq:redriven``                  hash        dead letter ``<partition>:<offset>`` -> its
                                                   last re-drive (JSON: at, by, fixed, target;
                                                   ops/dlq.py)
=====================================  ==========  ===============================================

Subject state and lists live in a generation so that ``creditstream replay`` can rebuild them
aside and switch readers over by setting ``{ns}:generation`` in one command. The identifier index
and parked records belong to ingestion and are shared by all generations.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_GENERATION = "live"


@dataclass(frozen=True)
class Keys:
    namespace: str = "cs"
    generation: str = DEFAULT_GENERATION

    # --- generation-scoped state ---------------------------------------------------------
    @property
    def gen_prefix(self) -> str:
        return f"{self.namespace}:{self.generation}:"

    def subject(self, subject_id: str) -> str:
        return f"{self.gen_prefix}subject:{subject_id}"

    @property
    def subjects(self) -> str:
        return f"{self.gen_prefix}subjects"

    def list_members(self, list_name: str) -> str:
        return f"{self.gen_prefix}list:{list_name}"

    @property
    def list_prefix(self) -> str:
        return f"{self.gen_prefix}list:"

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

    def parked(self, lookup_key: str) -> str:
        return f"{self.namespace}:parked:{lookup_key}"

    @property
    def parked_keys(self) -> str:
        return f"{self.namespace}:parked:keys"

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
    def dlq_redriven(self) -> str:
        return f"{self.namespace}:dlq:redriven"

    def worker(self, identity: str) -> str:
        """A running worker's heartbeat (JSON, expires unless renewed): ``replay --switch`` refuses
        while any exists."""
        return f"{self.namespace}:worker:{identity}"

    @property
    def worker_pattern(self) -> str:
        return f"{self.namespace}:worker:*"

    def with_generation(self, generation: str) -> Keys:
        return Keys(self.namespace, generation)


async def resolve_keys(redis, namespace: str) -> Keys:
    """The keys of the generation readers should use now."""
    gen = await redis.get(Keys(namespace).current_generation)
    if isinstance(gen, bytes):
        gen = gen.decode()
    return Keys(namespace, gen or DEFAULT_GENERATION)
