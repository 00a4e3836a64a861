"""The clients every part of creditstream connects with, built from the settings: Redis and the Avro
codec with its schema registry. (The Kafka clients are in streams/kafka.py, which owns the
``broker_kind`` switches.)

Below the composition root (creditstream/app.py): the agents' wiring, the operator commands
(ops/), the API and the tests all take their clients from here, so none of them imports the root.
"""

from __future__ import annotations

import inspect
import re

import redis.asyncio as aioredis
import structlog
from redis.asyncio.client import Pipeline as _Pipeline
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, OutOfMemoryError, ReadOnlyError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditstream.settings import Settings
from streams.codec import AvroCodec, ConfluentRegistry, LocalRegistry

log = structlog.get_logger("creditstream.connections")


# redis-py prefixes a pipeline's error with the failing command and its first arguments: in a batch's
# transaction those are state bytes (compressed, or a person's JSON in clear) and key names
_PIPELINE_COMMAND = re.compile(r"^Command # \d+ \(.*?\) of pipeline caused error: ", re.S)

REDIS_FULL = ("Redis is full: maxmemory reached and nothing may be evicted (noeviction), so it refuses "
              "writes; the batch is kept and retried until memory is added (docs/operations.md, Durability)")


def error_cause(exc: BaseException) -> str:
    """An error's name as metrics label it (``cause``): its type, but ``OutOfMemoryError`` for a Redis
    out of memory however it came (a script's error reply is a ``ResponseError`` naming it). Seen (an
    audit): with Redis full, the ingest and registry agents' retries counted as ResponseError, the
    subject agent's as OutOfMemoryError, which the alert's description and docs/operations.md name."""
    if isinstance(exc, OutOfMemoryError) or "OOM command not allowed" in str(exc):
        return "OutOfMemoryError"
    return type(exc).__name__


def error_text(exc: BaseException, limit: int = 300) -> str:
    """An error as a log line or /health may show it: without the arguments redis-py quotes of a
    pipeline's failing command, and a Redis out of memory said as such."""
    text = _PIPELINE_COMMAND.sub("", str(exc))
    if isinstance(exc, OutOfMemoryError) or "OOM command not allowed" in text:
        return REDIS_FULL
    return text[:limit]


def refused_by_a_replica(exc: BaseException) -> bool:
    """A write Redis refused because it is a read-only replica now: ``READONLY You can't write against
    a read only replica``, as a command's reply (redis-py's ``ReadOnlyError``) or inside a script's
    error (a ``ResponseError`` naming it)."""
    return isinstance(exc, ReadOnlyError) or (isinstance(exc, ResponseError) and "-READONLY " in str(exc))


class _FailoverAware:
    """What both the client and its pipelines do when Redis refuses a write as a read-only replica.

    That is a failover that kept the old primary running as a replica of the new one, as managed
    Redis services and Sentinel fail over: the endpoint's name moves to the new primary, while the
    connections already open stay with the old one. The refusal is a reply, not a dropped
    connection, so redis-py keeps them, and every retry of a batch met the same replica for ever
    (tests/integration/test_redis_failover.py). Every pooled connection is dropped then: the
    caller's retry connects again, to whatever the endpoint names now. The error is raised as
    before (a batch is retried whole)."""

    connection_pool: aioredis.ConnectionPool

    async def _after_refusal(self, exc: BaseException) -> None:
        if refused_by_a_replica(exc):
            log.warning("Redis refused a write as a read-only replica (a failover?): its connections are dropped "
                        "and made again", error=str(exc)[:200])
            await self.connection_pool.disconnect()


class FailoverAwarePipeline(_FailoverAware, _Pipeline):
    async def execute(self, raise_on_error: bool = True):  # type: ignore[override]
        try:
            return await super().execute(raise_on_error)
        except ResponseError as exc:
            await self._after_refusal(exc)
            raise


class FailoverAwareRedis(_FailoverAware, aioredis.Redis):
    """A Redis client that connects again after a failover left it on a read-only replica
    (:class:`_FailoverAware`)."""

    async def execute_command(self, *args, **options):
        try:
            return await super().execute_command(*args, **options)
        except ResponseError as exc:
            await self._after_refusal(exc)
            raise

    def pipeline(self, transaction: bool = True, shard_hint: str | None = None) -> FailoverAwarePipeline:
        return FailoverAwarePipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (the master asked for at every connect) that, with all its connections in
    use, waits for one to come free (``timeout``) instead of failing at once."""


def redis_from_settings(settings: Settings, *, pool: tuple[int, float] | None = None,
                        **options) -> FailoverAwareRedis:
    """A client of the Redis the settings name, with ``options`` (timeouts, retries) for its data
    connections: ``redis_url``'s server, or with ``redis_sentinels`` the master Sentinel names for
    ``redis_sentinel_master``, asked again at every new connection. A master demoted under a
    connection answers writes ``READONLY``: redis-py's Sentinel connection takes that for a dropped
    connection, and the retry asks Sentinel again. ``redis_url``'s user, password, database and TLS
    (``rediss://``, its ``ssl_*`` query parameters) serve the data nodes either way. ``pool``: (most
    connections, seconds a command waits for one when all are in use); default: redis-py's pool, which
    fails at once beyond its 100 connections (``MaxConnectionsError``)."""
    if not settings.redis_sentinels.strip():
        if pool is None:
            return FailoverAwareRedis.from_url(settings.redis_url, **options, **NO_CLIENT_COMMANDS)
        blocking = aioredis.BlockingConnectionPool.from_url(settings.redis_url, max_connections=pool[0],
                                                            timeout=pool[1], **options, **NO_CLIENT_COMMANDS)
        client = FailoverAwareRedis(connection_pool=blocking)
        client.auto_close_connection_pool = True  # as from_url's: closing the client closes its pool
        return client
    from redis.asyncio.connection import SSLConnection, parse_url
    from redis.asyncio.sentinel import Sentinel

    node = parse_url(settings.redis_url)
    tls = node.pop("connection_class", None) is SSLConnection
    for where in ("host", "port", "path"):
        node.pop(where, None)
    if tls:
        node["ssl"] = True
    asked = {k: v for k, v in options.items() if k in ("socket_timeout", "socket_connect_timeout")}
    if settings.redis_sentinel_password:
        asked["password"] = settings.redis_sentinel_password
        if settings.redis_sentinel_username:
            asked["username"] = settings.redis_sentinel_username
    sentinel = Sentinel(settings.sentinel_addresses, sentinel_kwargs=asked)
    waiting = {} if pool is None else {"connection_pool_class": _BlockingSentinelPool,
                                       "max_connections": pool[0], "timeout": pool[1]}
    return sentinel.master_for(settings.redis_sentinel_master, redis_class=FailoverAwareRedis, **node, **options,
                               **waiting, **NO_CLIENT_COMMANDS)


def _no_client_commands() -> dict[str, object]:
    """The keyword arguments that stop redis-py from sending CLIENT subcommands on every new
    connection: ``CLIENT SETINFO LIB-NAME/LIB-VER`` (the library's name and version) and, on RESP3,
    ``CLIENT MAINT_NOTIFICATIONS ON`` (a managed service's maintenance notices). deploy/redis.acl
    allows no CLIENT subcommand to the creditstream user, so Redis refused them with NOPERM on every
    connect: redis-py ignores the refusal, but each is an entry in the server's ACL LOG, where an
    operator looks for what the ACL refused creditstream. Only the arguments this redis-py has
    (``driver_info``, else ``lib_name`` / ``lib_version``; ``maint_notifications_config``)."""
    from redis.asyncio.connection import AbstractConnection

    params = inspect.signature(AbstractConnection.__init__).parameters
    out: dict[str, object] = {}
    if "driver_info" in params:
        out["driver_info"] = None
    else:
        out.update(lib_name=None, lib_version=None)
    if "maint_notifications_config" in params:
        from redis.maint_notifications import MaintNotificationsConfig

        out["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return out


NO_CLIENT_COMMANDS = _no_client_commands()
"""Pass to every ``from_url`` (:func:`_no_client_commands`)."""


def redis_client(settings: Settings, *, repeat_unanswered: bool = True) -> aioredis.Redis:
    """A Redis client that retries a dropped or refused connection a few times (backoff up to 1 s)
    before the error reaches the caller. A command Redis has not answered in
    ``REDIS_COMMAND_TIMEOUT_S`` is repeated as well (4 x 10 s in all) for the operator commands, which
    have no retries of their own: a replay of hours rides out a Redis stalled for seconds (an AOF
    fsync, a failover). The worker asks for ``repeat_unanswered=False``: its batch runner and its
    timer retry on their own and say so, and four waits kept "batch failed, retrying", and its
    metric, silent for 40 s while Redis hung."""
    errors = (RedisConnectionError, RedisTimeoutError) if repeat_unanswered else (RedisConnectionError,)
    return redis_from_settings(settings, socket_timeout=REDIS_COMMAND_TIMEOUT_S, socket_connect_timeout=3,
                               health_check_interval=30, decode_responses=False,
                               retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3, supported_errors=errors),
                               retry_on_error=list(errors))


REDIS_COMMAND_TIMEOUT_S = 10.0
"""How long a worker's or a command's Redis client waits for an answer (:func:`redis_client`)."""


def api_redis_client(settings: Settings) -> aioredis.Redis:
    """The query API's Redis client: a request must not wait longer for Redis than a client waits for
    the answer (the check API answers in milliseconds; a reverse proxy gives up after 30 s). Each
    command (and a new connection, AUTH included) gets ``settings.api_redis_timeout_s``, and a
    timeout is never repeated: a hung Redis answers the request 503 within that deadline instead of
    after :func:`redis_client`'s patient waits (10 s; the commands' repeat them). A dropped or
    refused connection is tried once more at once (a pooled connection Redis closed meanwhile, e.g.
    after a restart), which fails fast when Redis is down. At most ``settings.api_redis_connections``
    connections: a request beyond them waits for one within the same deadline (seen: with redis-py's
    pool, a burst of 150 concurrent requests got 49 answers 503 "Redis did not answer" at once from a
    healthy Redis, its pool's 100 connections in use). The workers keep :func:`redis_client`."""
    timeout = settings.api_redis_timeout_s
    return redis_from_settings(settings, pool=(settings.api_redis_connections, timeout),
                               socket_timeout=timeout, socket_connect_timeout=timeout,
                               health_check_interval=30, decode_responses=False,
                               retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                               retry_on_error=[RedisConnectionError])


def registry_client(settings: Settings) -> ConfluentRegistry:
    """The client of the remote schema registry at ``settings.schema_registry``, with its credentials,
    TLS files, timeout and retries (``schema_registry_*``)."""
    return ConfluentRegistry(settings.schema_registry, timeout=settings.schema_registry_timeout_s,
                             username=settings.schema_registry_username,
                             password=settings.schema_registry_password, token=settings.schema_registry_token,
                             ca_file=settings.schema_registry_ca_file, certfile=settings.schema_registry_certfile,
                             keyfile=settings.schema_registry_keyfile, retries=settings.schema_registry_retries)


def make_codec(settings: Settings) -> AvroCodec:
    """The Avro codec: the local registry built from schemas/ (stable ids), or a Confluent-compatible
    registry at ``settings.schema_registry`` (:func:`registry_client`; await the codec's
    ``ensure_for`` / ``ensure_writer`` before decoding / encoding inside an event loop)."""
    if settings.schema_registry == "local":
        return AvroCodec(LocalRegistry())
    return AvroCodec(registry_client(settings))


class RedisUnsuitable(RuntimeError):
    """A Redis that creditstream cannot keep its data in: one that evicts keys of its own choosing
    when full, or a Redis Cluster (:func:`check_redis`). Fixed in Redis's configuration."""


def access_refused(exc: NoPermissionError, namespace: str) -> str:
    """What an operator reads when Redis's ACL refused creditstream a command or a key (NOPERM)."""
    return (f"Redis's ACL refused the user of redis_url (NOPERM {exc}): it must be allowed "
            f"creditstream's commands and the keys of its namespace, {namespace}:* (deploy/redis.acl "
            "grants ~cs:*, the default namespace); change the ACL user, or the namespace setting")


async def check_redis_access(redis: aioredis.Redis, namespace: str) -> None:
    """:class:`RedisUnsuitable` naming the namespace and the ACL when the user of redis_url may not
    read the namespace's keys (NOPERM on ``<namespace>:generation``, the key every reader reads
    first). The worker, the API and replay check it at start; /health reads the same key."""
    from sinks.keys import Keys

    try:
        await redis.get(Keys(namespace).current_generation)
    except NoPermissionError as exc:
        raise RedisUnsuitable(access_refused(exc, namespace)) from None


async def redis_memory(redis: aioredis.Redis) -> tuple[int, int]:
    """(used_memory, maxmemory) from ``INFO memory``, which the creditstream user may read (maxmemory
    0: none). At maxmemory Redis refuses every write (noeviction, as :func:`check_redis` requires):
    a worker exports both with its heartbeat, a replay stops before it gets there (ops/replay.py)."""
    info = await redis.info("memory")
    return int(info.get("used_memory") or 0), int(info.get("maxmemory") or 0)


async def check_redis(redis: aioredis.Redis, namespace: str | None = None) -> str | None:
    """Refuse a Redis creditstream cannot keep its data in (:class:`RedisUnsuitable`); a warning
    (returned) for one that may lose some of its control keys, or whose set-up cannot be read.

    * **Access** (with ``namespace``): the ACL user of ``redis_url`` must be allowed the keys of the
      namespace (``<namespace>:*``). A namespace the ACL does not grant (deploy/redis.acl grants
      ``~cs:*``) made the worker crash at start with a traceback of NoPermissionError and nothing
      naming the namespace or the ACL: :class:`RedisUnsuitable` now says both.

    * **Eviction.** creditstream's keys are its data: nothing re-creates an evicted subject state (its
      next input would start a new one, without the records, lists and deadlines before it, and the
      check API would answer "nothing known"), and nothing notices: the positions and the sentinel
      survive. Redis evicts only with ``maxmemory`` set (not 0) and a policy other than
      ``noeviction``; managed services often ship ``volatile-lru`` or ``allkeys-lru``. ``allkeys-*`` is
      refused. ``volatile-*`` evicts only keys with a time to live: here the workers' heartbeats and a
      replay's liveness mark, which ``replay --switch``, ``positions move`` and ``/health`` rely on, so
      it is named in a warning.
    * **Redis Cluster** (``cluster_enabled:1``) is refused: a batch writes its subjects' states, the
      positions and the outbox in one MULTI/EXEC, and the ingest agent's scripts touch keys derived
      from their inputs; a cluster refuses both across hash slots (CROSSSLOT, MOVED), so every batch
      would fail and be retried for ever.
    * ``INFO`` refused (an ACL user without it): a warning, since neither is known (deploy/redis.acl
      allows it)."""
    if namespace is not None:
        await check_redis_access(redis, namespace)
    try:
        info = await redis.info()  # the default sections: memory and cluster among them
    except ResponseError as exc:
        return (f"could not read Redis's set-up ({str(exc)[:120]}): make sure maxmemory-policy is noeviction "
                "and Redis Cluster is off (allow INFO to the worker's ACL user to have it checked)")
    if int(info.get("cluster_enabled") or 0):
        raise RedisUnsuitable(
            "Redis Cluster is not supported (cluster_enabled:1): a batch writes its subjects' states and "
            "positions in one transaction across many keys, which a cluster refuses across hash slots. Use a "
            "single primary (a replica to fail over to behind the same address: docs/operations.md, Durability).")
    maxmemory = int(info.get("maxmemory") or 0)
    policy = str(info.get("maxmemory_policy") or "noeviction")
    if maxmemory == 0 or policy == "noeviction":
        return None
    if policy.startswith("allkeys-"):
        raise RedisUnsuitable(
            f"Redis evicts keys when full (maxmemory {maxmemory} bytes, maxmemory-policy {policy}): subject "
            "states, lists and parked records would be deleted without a trace. Set maxmemory-policy "
            "noeviction (writes are then refused when full: the workers retry and nothing is lost; "
            "docs/operations.md, Durability), or maxmemory 0.")
    return (f"Redis may evict keys with a time to live when full (maxmemory {maxmemory} bytes, maxmemory-policy "
            f"{policy}): the workers' heartbeats and a replay's liveness mark, which replay --switch, positions "
            "move and /health rely on. Set maxmemory-policy noeviction.")


async def redis_now_ms(redis) -> int:
    """Redis's clock (``TIME``), in ms since the epoch: the reference every worker and API shares."""
    sec, usec = await redis.time()
    return int(sec) * 1000 + int(usec) // 1000


async def follow_redis_clock(redis, tolerance_s: float, *, reference_ms: int | None = None) -> int:
    """This process's clock against Redis's (``TIME``): beyond ``tolerance_s`` either way the process
    follows Redis's clock (domain/clock.py ``follow_reference``), so that every worker and API dates
    and checks against one clock; it says so when that begins and ends. Returns the host's skew (ms),
    also in ``creditstream_clock_skew_seconds``. Run at start and every few seconds (a worker's
    heartbeat, the API's clock task); ``reference_ms``: Redis's clock read already (:func:`redis_now_ms`)."""
    from creditstream import metrics
    from domain import clock

    before = clock.correction_ms()
    if reference_ms is None:
        reference_ms = await redis_now_ms(redis)
    skew = clock.follow_reference(reference_ms, int(tolerance_s * 1000))
    metrics.CLOCK_SKEW.set(skew / 1000)
    after = clock.correction_ms()
    if after and not before:
        log.warning("this process's clock is off Redis's: it follows Redis's clock (fix NTP)",
                    skew_s=round(skew / 1000, 1), tolerance_s=tolerance_s)
    elif before and not after:
        log.info("this process's clock is back within the tolerance of Redis's: it follows its own",
                 skew_s=round(skew / 1000, 1))
    return skew
