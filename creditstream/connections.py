"""The clients every part of creditstream connects with, built from the settings: Redis and the Avro
codec with its schema registry. (The Kafka clients are in streams/kafka.py, which owns the
``broker_kind`` switches.)

Below the composition root (creditstream/app.py): the agents' wiring, the operator commands
(ops/), the API and the tests all take their clients from here, so none of them imports the root.
"""

from __future__ import annotations

import inspect

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditstream.settings import Settings
from streams.codec import AvroCodec, ConfluentRegistry, LocalRegistry


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


def redis_client(settings: Settings) -> aioredis.Redis:
    """A Redis client that retries a dropped or refused connection a few times (backoff up to 1 s)
    before the error reaches the caller (the batch runner then retries the whole batch)."""
    return aioredis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3,
                             health_check_interval=30, decode_responses=False,
                             retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                             retry_on_error=[RedisConnectionError, RedisTimeoutError], **NO_CLIENT_COMMANDS)


def api_redis_client(settings: Settings) -> aioredis.Redis:
    """The query API's Redis client: a request must not wait longer for Redis than a client waits for
    the answer (the check API answers in milliseconds; a reverse proxy gives up after 30 s). Each
    command (and a new connection, AUTH included) gets ``settings.api_redis_timeout_s``, and a
    timeout is never repeated: a hung Redis answers the request 503 within that deadline instead of
    after :func:`redis_client`'s patient retries (4 x 10 s). A dropped or refused connection is tried
    once more at once (a pooled connection Redis closed meanwhile, e.g. after a restart), which
    fails fast when Redis is down. The workers keep :func:`redis_client`."""
    timeout = settings.api_redis_timeout_s
    return aioredis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout,
                             health_check_interval=30, decode_responses=False,
                             retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                             retry_on_error=[RedisConnectionError], **NO_CLIENT_COMMANDS)


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
