"""The clients every part of creditstream connects with, built from the settings: Redis and the Avro
codec with its schema registry. (The Kafka clients are in streams/kafka.py, which owns the
``broker_kind`` switches.)

Below the composition root (creditstream/app.py): the agents' wiring, the operator commands
(ops/), the API and the tests all take their clients from here, so none of them imports the root.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditstream.settings import Settings
from streams.codec import AvroCodec, ConfluentRegistry, LocalRegistry


def redis_client(settings: Settings) -> aioredis.Redis:
    """A Redis client that retries a dropped or refused connection a few times (backoff up to 1 s)
    before the error reaches the caller (the batch runner then retries the whole batch)."""
    return aioredis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3,
                             health_check_interval=30, decode_responses=False,
                             retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
                             retry_on_error=[RedisConnectionError, RedisTimeoutError])


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
