"""Settings: where the broker, Redis and the schema registry are, and how the worker runs.

Precedence, lowest first:
1. the defaults below;
2. the embedded stack's file (``<run_dir>/stack.json``) when ``creditstream stack up`` is running;
3. a TOML settings file (``CREDITSTREAM_SETTINGS=path``, or ``./creditstream.toml`` if present);
4. environment variables ``CREDITSTREAM_<FIELD>`` (upper case), e.g. ``CREDITSTREAM_BROKER_URL``.

The same worker therefore runs against the embedded Tansu broker and a production Apache Kafka
cluster unchanged: only these values differ.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from creditstream import eventloop

ENV_PREFIX = "CREDITSTREAM_"
SECRET_FIELDS = frozenset({"redis_url", "sasl_password", "ssl_password", "api_tls_password", "pseudonym_key",
                           "schema_registry", "schema_registry_password", "schema_registry_token",
                           "redis_sentinel_password"})
URL_FIELDS = frozenset({"redis_url", "schema_registry"})
"""Secret settings that are URLs: only the password in them is masked (``user:***@``)."""


class SettingsError(ValueError):
    """A setting is missing or malformed; the message says which and why."""


@dataclass(frozen=True)
class Settings:
    # --- where things are -------------------------------------------------------------
    broker_url: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, comma separated; a ``kafka://`` prefix is accepted."""
    broker_kind: str = "kafka"
    """``kafka`` (Apache Kafka or compatible) or ``tansu`` (the embedded broker: its defects are
    worked around, see docs/broker.md)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_sentinels: str = ""
    """Redis Sentinel's addresses, ``host:port`` comma separated; empty: no Sentinel (``redis_url``
    names the server). With Sentinel every new connection asks it for the master of
    ``redis_sentinel_master``, so a failover moves the workers to the new master; ``redis_url`` then
    gives only the user, password, database and TLS of the data nodes (its host and port are not used)."""
    redis_sentinel_master: str = "mymaster"
    """The name Sentinel monitors the master under (``sentinel monitor <name> ...``)."""
    redis_sentinel_username: str = ""
    redis_sentinel_password: str = ""
    """What the Sentinels themselves ask for (their ``requirepass`` or ACL user); empty: nothing."""
    schema_registry: str = "local"
    """``local`` (built from schemas/, ids are stable) or the URL of a Confluent-compatible registry
    (``https://user:password@host:8081`` is accepted: the password is masked wherever it is shown)."""
    schema_registry_username: str = ""
    schema_registry_password: str = ""
    """HTTP basic auth for the schema registry (or ``user:password@`` in its URL, not both)."""
    schema_registry_token: str = ""
    """A bearer token for the schema registry (``Authorization: Bearer``), instead of basic auth."""
    schema_registry_ca_file: str = ""
    """The CA bundle (PEM) that signed the registry's TLS certificate; empty: the system's CAs."""
    schema_registry_certfile: str = ""
    schema_registry_keyfile: str = ""
    """A client certificate and its key (PEM) for a registry that asks for one (mutual TLS)."""
    schema_registry_timeout_s: float = 5.0
    """How long one request to the schema registry may take (connect and answer, seconds)."""
    schema_registry_retries: int = 2
    """How many times a request is repeated after a connection error, a timeout or a 5xx answer
    (exponential backoff from 0.2 s); a 4xx answer never is."""
    topic_prefix: str = "creditstream."
    partitions: int = 4
    replication_factor: int = 1
    namespace: str = "cs"
    """Redis key namespace root; replay builds a new generation beside the live one."""
    run_dir: str = ".run"
    rules_file: str = ""
    """Rules file (TOML); empty means the defaults from RULES.md shipped in domain/rules_default.toml."""
    calendar_file: str = ""
    """Extra calendar data (holidays / make-up working days) beyond what chinesecalendar ships."""

    # --- Kafka client security (passed through to aiokafka) ---------------------------
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = ""
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""
    ssl_password: str = ""

    # --- personal information (RULES.md 7) ------------------------------------------------
    pseudonym_key: str = ""
    """Secret key of the pseudonyms natural persons are stored under: a person's ID number never
    appears in a Redis key, set member or Kafka message key, only ``p.`` + HMAC-SHA256 of it under
    this key (sinks/keys.py). Required (at least 32 characters, e.g. ``openssl rand -hex 32``), the
    same in every worker and reader, and never changed once state is stored (a new key makes the
    stored persons unreachable until ``creditstream replay --switch``). The embedded stack
    generates one."""

    # --- worker tuning ------------------------------------------------------------------
    consumer_group: str = "creditstream"
    session_timeout_ms: int = 10_000
    max_poll_interval_ms: int = 300_000
    """How long a worker's agent may hold one batch (a batch retried while Redis is down, a stall)
    before its consumer leaves the group and its partitions go to the other workers (Kafka's
    ``max.poll.interval.ms``; aiokafka's default). It rejoins at its next fetch; the batch it held is
    not committed (the next owner applies it again, fenced: docs/operations.md)."""
    metadata_max_age_s: float = 30.0
    """How often every Kafka client refreshes the cluster's metadata. A partition a department adds to
    its topic while the workers run is read once the ingest group's leader has seen it: within this
    (aiokafka's and Kafka's own default is 5 minutes). creditstream's subject-keyed topics never
    move a subject when partitions are added (streams/placement.py)."""
    max_batch: int = 2_000
    """Most records one agent handles as one unit of work (one Redis round trip, one produce batch)."""
    state_cache_mb: int = 64
    """Memory (estimated, MiB) for the hot subjects' states (stored split) a worker keeps of the
    partitions it owns, as objects, so that a batch neither reads nor decodes them again
    (sinks/redis_state.py); 0: none. Once
    full, a state comes in only for a subject touched again soon after it was declined: it pays for
    busy subjects, while many subjects touched once in a long while only cost (docs/performance.md)."""
    replay_batch: int = 10_000
    """Inputs a replay job applies as one batch, in one Redis transaction (ops/replay.py): the log's
    reads joined until this many. A subject touched several times in a batch is encoded and written
    once; the batch's states are in memory meanwhile (measured: a job's peak RSS 172-178 MiB with the
    reads as they came, ~4,600 inputs, 242-249 MiB at 10,000, 305-310 MiB at 20,000)."""
    state_format: str = "compact"
    """How subject states are written to Redis (sinks/state_codec.py): ``compact`` (zstd with a trained
    dictionary, about 10 times smaller) or ``json`` (the legacy form). Both are always read, so the
    setting can change at any time; stored states change form when next written."""
    gc_freeze_interval_s: float = 0.25
    """Every so many seconds the worker collects the objects made since the last round and freezes
    the survivors out of Python's cyclic collector (creditstream/heap.py), so that no full collection
    walks the state cache and stops the worker for hundreds of milliseconds; 0: CPython's defaults."""
    event_loop: str = "uvloop"
    """The event loop of every process (creditstream/eventloop.py): ``uvloop`` (libuv; asyncio's own
    loop, with a warning, where uvloop is not installed) or ``asyncio``."""
    fetch_wait_ms: int = 0
    """The longest a consumer's fetch waits for ``fetch_min_bytes`` of data; 0: by broker, 25 on Apache
    Kafka, 50 on Tansu (``fetch_wait()``)."""
    fetch_min_bytes: int = 0
    """The least data a consumer's fetch waits for (up to ``fetch_wait_ms``): the broker answers as
    soon as this much is there. 0: by broker, 16384 on Apache Kafka, 1 on Tansu (``fetch_min()``).
    Measured at 1,000 inputs/s on Apache Kafka (`make bench-latency BROKER=kafka`, docs/performance.md):
    1 byte / 50 ms, a fetch answered for every message or two, kept the worker 74% busy (p99 89 ms);
    16 KiB / 10 ms 55% (p99 48-80 ms), but an idle worker then spent 9-10% of a core on empty
    fetches (3.7% before); 16 KiB / 25 ms 40-46% busy, p99 70-77 ms, 5.4% idle. On Tansu the short
    wait did not help (its own latency dominates, docs/broker.md 10). At a high rate the 16 KiB are
    there at once: no wait."""
    producer_linger_ms: int = 0
    """How long the producer holds a batch hoping for more. The agents hand it whole batches per
    partition (sinks/kafka.py), so waiting only adds latency (measured: 5 ms cost ~10 ms per hop)."""
    max_message_bytes: int = 1_048_588
    """The largest message the broker takes on creditstream's topics: Apache Kafka's
    ``message.max.bytes`` (default 1,048,588). A subject event or list change over it is an input
    error (dead-lettered as ``too-large``), never retried; the dead-letter topic is created with
    64 KiB more, so a department message at the limit still fits with the reason headers."""
    dead_letter_retention_days: float = 90.0
    """How long the dead-letter topic keeps dead letters (their original bytes hold names and ID
    numbers: RULES.md 7): its ``retention.ms``, set when the topic is created; ``creditstream topics``
    reports an existing topic that differs and ``topics --apply`` changes it. 0 keeps them forever."""
    check_audit_retention_days: float = 1826.0
    """How long the check-audit topic keeps its records of the credit checks answered (应查必查: the
    client, the instant, the subject, the outcome; one record per subject checked, ~160 bytes): its
    ``retention.ms``, set when the topic is created; ``creditstream topics`` reports an existing topic
    that differs and ``topics --apply`` changes it. Default five years; 0 keeps them forever. The
    counts ``creditstream report`` gives are kept in Redis, not read from the topic."""
    feedback_workdays: int = 10
    """Working days after its push (announcement) after which a list change without joint-punishment
    feedback is reported."""
    stall_after_s: float = 60.0
    """An agent that has held one batch (retrying) this long, or has events waiting and processed none
    for this long, is reported stalled by its worker's heartbeat and /health (seconds)."""
    log_end_patience_s: float = 60.0
    """How long a subject-event partition may end before the position Redis records for it before the
    worker stops with "the state is not from this log" (a topic recreated, the wrong Redis: seconds).
    Meanwhile it fetches the partition again, waiting 0.2 s, then up to 2 s: after a broker failover,
    Apache Kafka's new partition leader may report an old log end for a moment (agents/subject.py)."""
    timer_interval_s: float = 1.0
    """How often the timer agent looks for due instants (seconds)."""
    timer_lease_s: float = 10.0
    """How long a worker's timer holds the right to fire ticks without renewing it (seconds)."""
    clock_tolerance_s: float = 60.0
    """How far this worker's clock may be off Redis's (seconds), either way, before the worker follows
    Redis's clock (domain/clock.py ``follow_reference``; the timer fires nothing while still ahead)."""
    clock_offset_s: float = 0.0
    """Shifts this worker's clock (seconds): for tests of a skewed clock only."""
    web_port: int = 6066
    web_bind: str = "127.0.0.1"
    """Address the query API listens on (`creditstream worker --web`, and `creditstream api` unless --host):
    loopback unless set. Any other address needs ``api_tokens_file`` (the API refuses to start without)."""
    api_tokens_file: str = ""
    """TOML file of the API's bearer tokens, each with a client name and a role (public / personal):
    creditstream/access.py, docs/operations.md. Empty: no authentication (loopback only)."""
    api_anonymous_role: str = "public"
    """Role of requests when no token file is set: ``public`` (personal data masked) or ``personal``."""
    api_tls_certfile: str = ""
    """PEM certificate (chain) the API serves HTTPS with; with ``api_tls_keyfile``. Empty: plain HTTP."""
    api_tls_keyfile: str = ""
    api_tls_password: str = ""
    """Password of ``api_tls_keyfile``, if it is encrypted."""
    api_redis_timeout_s: float = 2.0
    """How long the query API waits for Redis to answer one command (or a new connection), seconds;
    never repeated after a timeout: a hung Redis answers a request 503 ``unavailable`` within it. The
    workers' client waits and retries longer (creditstream/connections.py)."""
    api_redis_connections: int = 100
    """Most connections the query API holds to Redis. A request that finds them all in use waits for
    one to come free, within ``api_redis_timeout_s`` (then 503 ``unavailable``: "the API is busy"), and
    its command then has ``api_redis_timeout_s`` of its own: a burst of more concurrent requests than this
    queues for a few milliseconds instead of failing."""
    check_batch_max: int = 200
    """Most subjects one batch check (``POST /check``, e.g. every bidder of a tender) may name; more: 413."""
    check_audit_flush_ms: int = 200
    """How often the API produces the check-audit records it buffered (ms): a check's answer never
    waits for the broker (docs/checks.md, "The check API")."""
    check_audit_buffer: int = 50_000
    """Most check-audit records the API holds while the broker is slow or down; beyond it new
    records are dropped (counted in ``creditstream_check_audit_dropped_total``, logged)."""
    log_level: str = "INFO"
    log_format: str = "auto"
    """``auto`` (console on a terminal, JSON otherwise), ``console`` or ``json``."""
    libraries_log_level: str = "WARNING"
    """The level of the Kafka client's, Faust's and mode's own loggers (aiokafka, faust, mode, kafka),
    whatever ``log_level`` is (the higher of the two applies to them): at DEBUG they write lines for
    every fetch and produce, which at 1,000 inputs/s took a worker from 53% to 91% busy and its
    latency p99 from 88 to 317 ms (docs/performance.md). DEBUG here when the clients themselves are
    to be seen."""

    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # ------------------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> list[str]:
        servers = []
        for part in self.broker_url.split(","):
            part = part.strip()
            for scheme in ("kafka://", "tcp://", "PLAINTEXT://", "SSL://", "SASL_SSL://", "SASL_PLAINTEXT://"):
                if part.startswith(scheme):
                    part = part[len(scheme):]
            if part:
                servers.append(part)
        return servers

    @property
    def is_tansu(self) -> bool:
        return self.broker_kind == "tansu"

    def fetch_wait(self) -> int:
        """``fetch_wait_ms``, or the broker's default when 0."""
        return self.fetch_wait_ms or (50 if self.is_tansu else 25)

    def fetch_min(self) -> int:
        """``fetch_min_bytes``, or the broker's default when 0."""
        return self.fetch_min_bytes or (1 if self.is_tansu else 16384)

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments common to every aiokafka client (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
            "metadata_max_age_ms": int(self.metadata_max_age_s * 1000),
        }
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile or None,
                certfile=self.ssl_certfile or None,
                keyfile=self.ssl_keyfile or None,
                password=self.ssl_password or None,
            )
        return kw

    def masked(self) -> dict[str, Any]:
        """All settings as a dict with secrets masked (for ``config check`` and logs)."""
        out = {}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS and value:
                value = mask_secret(f.name, str(value))
            out[f.name] = value
        return out

    def validate(self) -> list[str]:
        """Problems with these settings, as readable sentences (empty when all is well)."""
        problems = []
        if not self.bootstrap_servers:
            problems.append("broker_url: no bootstrap server given")
        for server in self.bootstrap_servers:
            host, _, port = server.rpartition(":")
            if not host or not port.isdigit():
                problems.append(f"broker_url: {server!r} is not host:port")
        if self.broker_kind not in ("kafka", "tansu"):
            problems.append(f"broker_kind: {self.broker_kind!r} is not 'kafka' or 'tansu'")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            problems.append("redis_url: must start with redis://, rediss:// or unix://")
        for address in self.sentinel_addresses_text():
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                problems.append(f"redis_sentinels: {address!r} is not host:port")
        if self.redis_sentinels.strip() and self.redis_url.startswith("unix://"):
            problems.append("redis_sentinels: Sentinel names masters by host and port; redis_url must be redis:// or "
                            "rediss:// (its user, password, database and TLS are used)")
        problems += self._registry_problems()
        if self.partitions < 1:
            problems.append("partitions: must be >= 1")
        if not 1 <= self.metadata_max_age_s <= 3600:
            problems.append("metadata_max_age_s: must be between 1 and 3600 seconds")
        if self.replication_factor < 1:
            problems.append("replication_factor: must be >= 1")
        if self.security_protocol not in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"):
            problems.append(f"security_protocol: {self.security_protocol!r} is not a Kafka protocol")
        if self.security_protocol.startswith("SASL") and not self.sasl_mechanism:
            problems.append("sasl_mechanism: required with a SASL security_protocol")
        if self.sasl_mechanism and self.sasl_mechanism not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            problems.append(f"sasl_mechanism: {self.sasl_mechanism!r} is not PLAIN or SCRAM-SHA-256/512")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "rules_file", "calendar_file",
                     "schema_registry_ca_file", "schema_registry_certfile", "schema_registry_keyfile"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                said = "is a directory, not a file" if Path(path).is_dir() else "does not exist"
                problems.append(f"{name}: {path} {said}")
        if not 1 <= self.web_port <= 65535:
            problems.append(f"web_port: {self.web_port} is not a TCP port (1 to 65535)")
        problems += self._rules_and_calendar_problems()
        if self.dead_letter_retention_days < 0:
            problems.append("dead_letter_retention_days: 0 (keep forever) or more")
        if self.check_audit_retention_days < 0:
            problems.append("check_audit_retention_days: 0 (keep forever) or more")
        if not 0 < self.api_redis_timeout_s <= 30:
            problems.append("api_redis_timeout_s: more than 0 and at most 30 (seconds)")
        if self.api_redis_connections < 1:
            problems.append("api_redis_connections: must be >= 1")
        if self.check_batch_max < 1 or self.check_audit_flush_ms < 1 or self.check_audit_buffer < 1:
            problems.append("check_batch_max, check_audit_flush_ms, check_audit_buffer: must be >= 1")
        if self.max_batch < 1:
            problems.append("max_batch: must be >= 1")
        if self.max_poll_interval_ms < 1_000:
            problems.append("max_poll_interval_ms: at least 1000 (ms)")
        if self.gc_freeze_interval_s < 0:
            problems.append("gc_freeze_interval_s: 0 (CPython's defaults) or more")
        if self.state_cache_mb < 0:
            problems.append("state_cache_mb: 0 (no cache) or more")
        if self.replay_batch < 1:
            problems.append("replay_batch: must be >= 1")
        if self.log_end_patience_s < 0:
            problems.append("log_end_patience_s: 0 (stop at once) or more")
        wrong_loop = eventloop.problem(self.event_loop)
        if wrong_loop is not None:
            problems.append(wrong_loop)
        if self.state_format not in ("compact", "json"):
            problems.append(f"state_format: {self.state_format!r} is not compact or json")
        if not 1024 <= self.max_message_bytes <= 3 * 1024 * 1024:
            problems.append("max_message_bytes: between 1024 and 3145728 (the producer sends requests of up to 4 MiB)")
        if not self.pseudonym_key:
            problems.append("pseudonym_key: not set; natural persons' ID numbers are stored only under keyed "
                            "pseudonyms (RULES.md 7): set a random secret of at least 32 characters "
                            "(openssl rand -hex 32), the same in every worker and reader")
        elif len(self.pseudonym_key) < 32:
            problems.append("pseudonym_key: at least 32 characters (openssl rand -hex 32)")
        if self.log_format not in ("auto", "console", "json"):
            problems.append("log_format: auto, console or json")
        from creditstream.logs import level_problem

        for name in ("log_level", "libraries_log_level"):
            problem = level_problem(getattr(self, name))
            if problem:
                problems.append(f"{name}: {problem}")
        from creditstream.access import settings_problems

        problems += settings_problems(self)
        return problems

    def _rules_and_calendar_problems(self) -> list[str]:
        """The rules and calendar files load as the worker loads them (a worker refuses to start
        otherwise)."""
        import tomllib

        from domain.calendar import WorkingCalendar
        from domain.rulebook import RulebookError, load_rulebook

        problems = []
        if self.rules_file and Path(self.rules_file).is_file():
            try:
                load_rulebook(self.rules_file)
            except (RulebookError, tomllib.TOMLDecodeError, ValueError) as exc:
                problems.append(f"rules_file: {exc}")
        if self.calendar_file and Path(self.calendar_file).is_file():
            try:
                WorkingCalendar.from_file(self.calendar_file)
            except (tomllib.TOMLDecodeError, ValueError, TypeError) as exc:
                problems.append(f"calendar_file: {exc}")
        return problems

    def _registry_problems(self) -> list[str]:
        if self.schema_registry == "local":
            return []
        url = urlsplit(self.schema_registry)
        if url.scheme not in ("http", "https") or not url.hostname:
            return ["schema_registry: 'local' or an http(s) URL"]
        problems = []
        in_url = "@" in url.netloc
        if in_url and (self.schema_registry_username or self.schema_registry_password):
            problems.append("schema_registry_username / schema_registry_password: the schema_registry URL has "
                            "user:password@ already; give the credentials in one place")
        if self.schema_registry_password and not self.schema_registry_username:
            problems.append("schema_registry_password: needs schema_registry_username")
        if self.schema_registry_token and (in_url or self.schema_registry_username):
            problems.append("schema_registry_token: a bearer token or basic-auth credentials, not both")
        if self.schema_registry_keyfile and not self.schema_registry_certfile:
            problems.append("schema_registry_keyfile: needs schema_registry_certfile (the client certificate)")
        tls = [n for n in ("schema_registry_ca_file", "schema_registry_certfile", "schema_registry_keyfile")
               if getattr(self, n)]
        if tls and url.scheme != "https":
            problems.append(f"{', '.join(tls)}: TLS settings need an https:// schema_registry URL")
        if self.schema_registry_timeout_s <= 0:
            problems.append("schema_registry_timeout_s: must be > 0")
        if self.schema_registry_retries < 0:
            problems.append("schema_registry_retries: must be >= 0")
        return problems

    def warnings(self) -> list[str]:
        """What is allowed but unsafe for production, as sentences (``config check`` prints them)."""
        out = []
        if self.redis_url.startswith(("redis://", "rediss://")):
            from urllib.parse import urlsplit

            if not urlsplit(self.redis_url).password:
                out.append("redis_url has no password: the state store holds personal information and access to "
                           "it must be authenticated (RULES.md 7); use redis://USER:PASSWORD@HOST/DB with an ACL "
                           "user (deploy/redis.acl)")
        return out

    def sentinel_addresses_text(self) -> list[str]:
        return [a.strip() for a in self.redis_sentinels.split(",") if a.strip()]

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``redis_sentinels`` as (host, port) pairs (empty: no Sentinel)."""
        out = []
        for address in self.sentinel_addresses_text():
            host, _, port = address.rpartition(":")
            out.append((host.strip("[]"), int(port)))
        return out

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def mask_secret(name: str, value: str) -> str:
    """A secret setting as it may be shown: ``***``, or for a URL (:data:`URL_FIELDS`) the URL with
    its password masked (``scheme://user:***@host``; ``***@`` when it has no user, or no password:
    then the user part may be a token)."""
    if name in URL_FIELDS:
        # redis://user:password@host:port/db -> redis://user:***@host:port/db
        scheme, sep, rest = value.partition("://")
        if "@" in rest:
            cred, _, host = rest.rpartition("@")
            user = cred.split(":", 1)[0] if ":" in cred else ""
            return f"{scheme}{sep}{user}:***@{host}" if user else f"{scheme}{sep}***@{host}"
        return value
    return "***"


def _coerce(name: str, raw: Any) -> Any:
    kinds = {f.name: f.type for f in fields(Settings)}
    if name not in kinds:
        raise SettingsError(f"unknown setting {name!r}; known: {', '.join(sorted(kinds))}")
    kind = kinds[name]
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {name}: {raw!r} is not a valid {kind}") from None


def stack_file(run_dir: str | os.PathLike[str]) -> Path:
    return Path(run_dir) / "stack.json"


OTHER_VARIABLES = frozenset({"SETTINGS", "PURE_PYTHON", "CACHE", "REDIS_SERVER", "STACK_BROKER", "API_TOKEN"})
"""``CREDITSTREAM_*`` variables that are not settings (the settings file, the rules core, the Maven
cache, the stack's redis-server and broker, report-verify's token); ``CREDITSTREAM_TEST_*`` are the
tests'."""


def unknown_variables(env: dict[str, str] | None = None) -> list[str]:
    """Sentences for each ``CREDITSTREAM_*`` environment variable that names no setting: it is ignored
    (a misspelt ``CREDITSTREAM_RULE_FILE`` left the default rules in force without a word, where the
    same typo in the settings file is an error)."""
    import difflib

    env = dict(os.environ if env is None else env)
    names = sorted({f.name for f in fields(Settings)} - {"extra"})
    out = []
    for key in sorted(env):
        if not key.startswith(ENV_PREFIX):
            continue
        rest = key[len(ENV_PREFIX):]
        if rest.lower() in names or rest in OTHER_VARIABLES or rest.startswith("TEST_"):
            continue
        close = difflib.get_close_matches(rest.lower(), names, n=1)
        hint = f" (did you mean {ENV_PREFIX}{close[0].upper()}?)" if close else ""
        out.append(f"environment variable {key} names no setting: it is ignored{hint}")
    return out


def load(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from the layers described in the module docstring."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    run_dir = env.get(ENV_PREFIX + "RUN_DIR", Settings.run_dir)

    sf = stack_file(run_dir)
    if sf.is_file():
        try:
            stack = json.loads(sf.read_text())
            values.update({k: v for k, v in stack.get("settings", {}).items()})
        except (OSError, ValueError):
            pass

    path = env.get(ENV_PREFIX + "SETTINGS")
    if path is None and Path("creditstream.toml").is_file():
        path = "creditstream.toml"
    if path:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise SettingsError(f"settings file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"settings file {path}: {exc}") from None
        values.update(data.get("creditstream", data))

    names = {f.name for f in fields(Settings)} - {"extra"}
    for key, raw in env.items():
        if key.startswith(ENV_PREFIX) and key != ENV_PREFIX + "SETTINGS":
            name = key[len(ENV_PREFIX):].lower()
            if name in names:
                values[name] = raw
    values.update(overrides)
    return Settings(**{k: _coerce(k, v) for k, v in values.items()})
