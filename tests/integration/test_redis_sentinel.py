"""Redis behind Sentinel, the high-availability set-up of a Redis run on-premises: the workers ask
Sentinel for the master (``redis_sentinels``, ``redis_sentinel_master``) at every new connection,
and go on after Sentinel fails the master over (creditstream/connections.py ``redis_from_settings``).

Real servers: a master, its replica and one Sentinel (quorum 1), all the embedded stack's
redis-server binary; the failover is Sentinel's own (``SENTINEL FAILOVER``: the old master lives
on, as the new one's replica, the case where a client's open connections meet ``READONLY``).
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from creditstream.probes import ServiceUnreachable
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.redis_servers import doc_nos, free_port, redis_server

pytestmark = [pytest.mark.integration]
PENALTY = schema_of("penalty")
MASTER = "creditstream-test"


async def sentinel_server(tmp_path, master_port: int):
    from ops.stack import find_redis_server

    port = free_port()
    conf = tmp_path / "sentinel.conf"  # Sentinel rewrites its file: it must be writable
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {master_port} 1\n"
                    f"sentinel down-after-milliseconds {MASTER} 2000\n"
                    f"sentinel failover-timeout {MASTER} 5000\n")
    proc = await asyncio.create_subprocess_exec(find_redis_server(), str(conf), "--sentinel",
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    for _ in range(100):
        assert proc.returncode is None, "redis-sentinel did not start"
        try:
            await client.ping()
            return proc, client, port
        except Exception:  # noqa: BLE001 - not listening yet
            await asyncio.sleep(0.05)
    raise AssertionError("redis-sentinel did not answer")


async def master_port(sentinel) -> int:
    host, port = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
    return int(port)


async def test_workers_find_the_master_by_sentinel_and_follow_its_failover(tmp_path, settings, department):
    from creditstream.app import Pipeline
    from creditstream.probes import _probe_redis

    first, first_client, first_port = await redis_server(tmp_path, "first")
    second, second_client, second_port = await redis_server(tmp_path, "second")
    await second_client.execute_command("REPLICAOF", "127.0.0.1", first_port)
    sentinel, sentinel_client, sentinel_port = await sentinel_server(tmp_path, first_port)
    # redis_url's host and port name nothing that listens: with Sentinel they are not used
    s = settings.replace(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_sentinels=f"127.0.0.1:{sentinel_port}",
                         redis_sentinel_master=MASTER)
    assert s.validate() == []
    worker = Pipeline(s)
    try:
        async def replica_known():
            replicas = await sentinel_client.execute_command("SENTINEL", "REPLICAS", MASTER)
            return len(replicas) == 1

        await eventually(replica_known, timeout=30, interval=0.5)  # Sentinel can only fail over to a replica it knows
        await _probe_redis(s, 2)  # what every command's pre-flight asks
        await worker.start()
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="沪罚〔2024〕71号"))

        async def applied_on(client, doc_no):
            return doc_no in await doc_nos(client, s)

        await eventually(lambda: applied_on(first_client, "沪罚〔2024〕71号"), timeout=30)
        assert await first_client.execute_command("WAIT", 1, 5000) == 1

        await sentinel_client.execute_command("SENTINEL", "FAILOVER", MASTER)

        async def failed_over():
            return await master_port(sentinel_client) == second_port

        await eventually(failed_over, timeout=30, interval=0.5)
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="沪罚〔2024〕72号"))
        await eventually(lambda: applied_on(second_client, "沪罚〔2024〕72号"), timeout=40, interval=0.5)
        assert await doc_nos(second_client, s) == {"沪罚〔2024〕71号", "沪罚〔2024〕72号"}
    finally:
        await worker.stop()
        for client in (first_client, second_client, sentinel_client):
            await client.aclose()
        for proc in (first, second, sentinel):
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


async def test_a_sentinel_that_does_not_answer_is_named_as_the_outage(settings):
    from creditstream.probes import REDIS, probe_services

    s = settings.replace(redis_sentinels=f"127.0.0.1:{free_port()}", redis_sentinel_master=MASTER)
    with pytest.raises(ServiceUnreachable) as raised:  # (its own event loop: in a thread, as a command runs it)
        await asyncio.to_thread(probe_services, s, {REDIS}, 1)
    [(service, address, _reason)] = raised.value.outages
    assert address == f"Sentinel {s.redis_sentinels} (master {MASTER})", raised.value.outages


def test_sentinel_settings_are_checked():
    from creditstream.settings import Settings

    assert Settings(redis_sentinels="sentinel-1:26379, sentinel-2:26379").sentinel_addresses == [
        ("sentinel-1", 26379), ("sentinel-2", 26379)]
    assert [p for p in Settings(redis_sentinels="sentinel-1").validate() if p.startswith("redis_sentinels")] == [
        "redis_sentinels: 'sentinel-1' is not host:port"]
    assert any("redis_url must be redis://" in p for p in
               Settings(redis_sentinels="s:26379", redis_url="unix:///tmp/redis.sock").validate())
    assert "redis_sentinel_password" in Settings(redis_sentinel_password="pw").masked() and \
        Settings(redis_sentinel_password="pw").masked()["redis_sentinel_password"] == "***"
