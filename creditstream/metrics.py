"""Prometheus metrics (base units: seconds, bytes; no per-subject labels, no personal data).

Besides creditstream's own, the registry carries the standard process and runtime metrics
(``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``process_open_fds``,
``process_start_time_seconds``, ... and ``python_info``). Alerting rules: deploy/prometheus-rules.yml;
a dashboard: deploy/grafana-dashboard.json (docs/operations.md, "Metrics and alerts").
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)
PROCESS = ProcessCollector(registry=REGISTRY)
"""CPU, memory, open file descriptors and start time of this process (from /proc; none elsewhere)."""
PLATFORM = PlatformCollector(registry=REGISTRY)
"""``python_info``: the Python implementation and version."""

EVENTS_IN = Counter("creditstream_events_in_total", "Messages consumed, by agent and topic",
                    ["agent", "topic"], registry=REGISTRY)
EVENTS_OUT = Counter("creditstream_events_out_total", "Messages produced, by topic", ["topic"], registry=REGISTRY)
OUTCOMES = Counter("creditstream_record_outcomes_total",
                   "Subject-record outcomes (new, duplicate, correction, revocation, deletion, redelivered)",
                   ["outcome"], registry=REGISTRY)
DEAD_LETTERS = Counter("creditstream_dead_letters_total", "Messages sent to the dead-letter topic, by reason",
                       ["reason"], registry=REGISTRY)
PARKED = Counter("creditstream_parked_total", "Records parked until the registry knows their subject",
                 registry=REGISTRY)
MOVED = Counter("creditstream_records_moved_total",
                "Decisions attached through a legacy number that followed the number to another organisation",
                registry=REGISTRY)
RELEASED = Counter("creditstream_released_total", "Parked records attached once the registry learnt them",
                   registry=REGISTRY)
REGISTRATIONS_MISKEYED = Counter("creditstream_registrations_miskeyed_total",
                                 "Registrations whose message key is not their USCC (the compacted topic keeps "
                                 "one registration per key)", registry=REGISTRY)
BATCH_SECONDS = Histogram("creditstream_batch_duration_seconds", "Time to process one batch, by agent", ["agent"],
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                          registry=REGISTRY)
PROCESSING_LATENCY = Histogram("creditstream_processing_latency_seconds",
                               "Time from a message's timestamp to the commit of its batch, by agent", ["agent"],
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                               registry=REGISTRY)
RETRIES = Counter("creditstream_batch_retries_total", "Batches retried after a transient failure, by agent and cause",
                  ["agent", "cause"], registry=REGISTRY)
REDIS_WRITE_SECONDS = Histogram("creditstream_redis_write_seconds", "Time of one pipelined Redis write",
                                buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
                                registry=REGISTRY)
EVENT_FRESHNESS = Gauge("creditstream_event_freshness_seconds",
                        "Age of the newest message handled, by agent (event time to now)", ["agent"],
                        registry=REGISTRY)
CONSUMER_LAG = Gauge("creditstream_consumer_lag_messages", "Inputs the agent can read and has not: the end it may "
                     "read to (on Apache Kafka the last stable offset: no open transaction's records) minus its "
                     "position, by agent and topic", ["agent", "topic"], registry=REGISTRY)
IN_OPEN_TRANSACTIONS = Gauge("creditstream_inputs_in_open_transactions", "Inputs the agent may not read yet: "
                             "written in, or after, a producer's transaction still open (Apache Kafka: high "
                             "watermark minus last stable offset), by agent and topic", ["agent", "topic"],
                             registry=REGISTRY)
DELETED_UNREAD = Counter("creditstream_inputs_deleted_unread_total",
                         "Inputs the broker deleted before the agent read them (the topic's retention, or "
                         "DeleteRecords, while the workers were stopped or behind): never applied, by agent and "
                         "topic", ["agent", "topic"], registry=REGISTRY)
TIMER_BACKLOG = Gauge("creditstream_due_timer_backlog", "Subjects whose due instant has passed and whose tick is not "
                      "written yet", registry=REGISTRY)
LIST_CHANGES = Counter("creditstream_list_changes_total", "List changes emitted, by list kind and transition",
                       ["list_kind", "transition"], registry=REGISTRY)
FENCED = Counter("creditstream_fenced_batches_total",
                 "Subject batches refused because another worker moved their partitions' positions (a paused or "
                 "fenced-out worker)", registry=REGISTRY)
AGENT_DEAD_LETTER_REASONS = ("unexpected-schema", "future-timestamp", "processing-error", "bad-subject-event",
                             "too-large")
"""The reasons the agents give a dead letter themselves (agents/), besides the decoder's
(``streams.codec.DECODE_REASONS``) and validation's (``domain.fields.REASONS``)."""
REWINDS = Counter("creditstream_rewinds_total",
                  "Partitions re-fed from the position Redis records (Redis lost its tail, or a stale commit)",
                  ["agent"], registry=REGISTRY)
HELD_PAST_POLL_INTERVAL = Counter("creditstream_batches_held_past_poll_interval_total",
                                  "Batches an agent held (retried, stalled) longer than max_poll_interval_ms: its "
                                  "consumer left the group meanwhile, and rejoined at its next fetch", ["agent"],
                                  registry=REGISTRY)
CLOCK_SKEW = Gauge("creditstream_clock_skew_seconds",
                   "This worker's clock minus the reference server's (Redis TIME); the timer fires nothing while it "
                   "exceeds the tolerance", registry=REGISTRY)
REDIS_MEMORY_USED = Gauge("creditstream_redis_memory_used_bytes",
                          "Redis's used_memory (INFO memory), read by each worker with its heartbeat",
                          registry=REGISTRY)
REDIS_MAXMEMORY = Gauge("creditstream_redis_maxmemory_bytes",
                        "Redis's maxmemory (0: none), read with its heartbeat: at it, Redis refuses every write "
                        "(noeviction)", registry=REGISTRY)
DEPENDENCY_UP = Gauge("creditstream_dependency_up",
                      "Whether this worker reached the dependency at its last heartbeat (every 2 s): 1 yes, 0 no; "
                      "redis: its heartbeat written, kafka: the cluster's metadata fetched", ["dependency"],
                      registry=REGISTRY)
for _dependency in ("redis", "kafka"):
    DEPENDENCY_UP.labels(_dependency)
NUMBERS_TO_FOLLOW = Gauge("creditstream_numbers_to_follow",
                          "1 while Redis's loss of the identifier index's last writes is noted (the ingest or "
                          "registry agent read partitions again) and `creditstream follow-numbers` has not run "
                          "since: decisions sent by a legacy number may be on another organisation than their "
                          "number names; read with each heartbeat", registry=REGISTRY)
TICKS_HELD = Counter("creditstream_ticks_held_total", "Timer rounds that fired nothing because this worker's clock "
                     "is ahead of the reference", registry=REGISTRY)
CHECKS = Counter("creditstream_checks_total", "Credit checks answered by the check API (GET/POST /check), by matter "
                 "and outcome", ["matter", "outcome"], registry=REGISTRY)
CHECK_SECONDS = Histogram("creditstream_check_duration_seconds",
                          "Time to answer one check request (a batch counts once), by form (single, batch)", ["form"],
                          buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
                          registry=REGISTRY)
CHECK_AUDIT_DROPPED = Counter("creditstream_check_audit_dropped_total",
                              "Check-audit records not delivered to the check-audit topic (the buffer was full "
                              "while the broker was slow or down, or they were still unsent at shutdown), by reason",
                              ["reason"], registry=REGISTRY)
CHECK_AUDIT_PENDING = Gauge("creditstream_check_audit_pending", "Check-audit records waiting to be produced",
                            registry=REGISTRY)
STATE_TOO_LARGE = Counter("creditstream_state_too_large_total",
                          "Subject states written but not held by the state cache because they are larger than "
                          "its whole budget (state_cache_mb): read from Redis and decoded on every batch",
                          registry=REGISTRY)
GC_COLLECTED = Counter("creditstream_gc_collected_objects_total",
                       "Cyclic garbage found by the collect-and-freeze rounds (creditstream/heap.py)",
                       registry=REGISTRY)
GC_ROUND_SECONDS = Histogram("creditstream_gc_round_seconds",
                             "Time of one collect-and-freeze round of the cyclic collector (creditstream/heap.py)",
                             buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
                             registry=REGISTRY)


class _HeldInMemory:
    """``creditstream_worker_held_entries`` and ``creditstream_worker_held_capacity`` by ``holder``:
    how full each of the worker's bounded caches is (creditstream/holdings.py), counted at a scrape."""

    def describe(self):
        return [GaugeMetricFamily("creditstream_worker_held_entries", _HELD_ENTRIES, labels=["holder"]),
                GaugeMetricFamily("creditstream_worker_held_capacity", _HELD_CAPACITY, labels=["holder"])]

    def collect(self):
        from creditstream.holdings import held

        entries = GaugeMetricFamily("creditstream_worker_held_entries", _HELD_ENTRIES, labels=["holder"])
        capacity = GaugeMetricFamily("creditstream_worker_held_capacity", _HELD_CAPACITY, labels=["holder"])
        for name, h in sorted(held().items()):
            entries.add_metric([name], h.entries)
            if h.capacity is not None:
                capacity.add_metric([name], h.capacity)
        return [entries, capacity]


_HELD_ENTRIES = ("Entries a bounded cache of this worker holds, by holder (the rules core's memo caches, storage "
                 "ids, the index entries taught, the subject states held)")
_HELD_CAPACITY = ("The most entries a bounded cache of this worker holds, by holder (absent where no one count "
                  "bounds it: the state cache is bounded in bytes, months_added table by table)")
HELD_IN_MEMORY = _HeldInMemory()
REGISTRY.register(HELD_IN_MEMORY)


def dead_letter_reasons() -> tuple[str, ...]:
    """Every reason a dead letter may be given."""
    from domain.fields import REASONS
    from streams.codec import DECODE_REASONS

    return tuple(dict.fromkeys((*DECODE_REASONS, *REASONS, *AGENT_DEAD_LETTER_REASONS)))


def export_zero(agent: str) -> None:
    """The labelled counters the alerts take ``increase()`` of, exported at 0 from an agent's start
    (deploy/prometheus-rules.yml): a series that first appears at 1 has no increase, so the first dead
    letter of a reason (a processing error: a page), rewind or batch held past the poll interval
    raised no alert (the Prometheus documentation: initialise label values you know in advance)."""
    for reason in dead_letter_reasons():
        DEAD_LETTERS.labels(reason)
    REWINDS.labels(agent)
    HELD_PAST_POLL_INTERVAL.labels(agent)
