"""creditstream/connections.py ``redis_client``: in a worker, a command a hung Redis does not answer
fails after one wait (the batch runner retries and says so); the operator commands, which have no
retries of their own, wait again (their client's configuration: test_api_guards); a refused
connection is tried again by both."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditstream import connections
from creditstream.settings import Settings


async def hung_redis_attempts(monkeypatch, timeout_s: float, **options) -> tuple[int, float]:
    """(connections accepted, seconds) until a GET to a server that never answers fails."""
    monkeypatch.setattr(connections, "REDIS_COMMAND_TIMEOUT_S", timeout_s)
    accepted = 0
    held = []

    async def never_answer(reader, writer):  # accepts and reads, as a SIGSTOPped redis-server's kernel does
        nonlocal accepted
        accepted += 1
        held.append(writer)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connections.redis_client(Settings(redis_url=f"redis://127.0.0.1:{port}/0"), **options)
    try:
        began = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await client.get("k")
        took = time.monotonic() - began
    finally:
        await client.aclose()
        for w in held:
            w.close()
        server.close()
    return accepted, took


async def test_a_worker_waits_once_for_a_hung_redis_not_four_times(monkeypatch):
    accepted, took = await hung_redis_attempts(monkeypatch, 0.3, repeat_unanswered=False)
    assert accepted == 1 and took < 1.0, (accepted, took)


async def test_a_refused_connection_is_tried_again_before_the_error_reaches_the_caller(monkeypatch):
    attempts = 0
    real_connect = asyncio.open_connection

    async def counting(*args, **kwargs):
        nonlocal attempts
        attempts += 1
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(asyncio, "open_connection", counting)
    probe = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = probe.sockets[0].getsockname()[1]
    probe.close()
    await probe.wait_closed()  # nothing listens there now: each connection is refused
    client = connections.redis_client(Settings(redis_url=f"redis://127.0.0.1:{port}/0"))
    try:
        with pytest.raises(RedisConnectionError):
            await client.get("k")
    finally:
        await client.aclose()
    assert attempts == 4, attempts
