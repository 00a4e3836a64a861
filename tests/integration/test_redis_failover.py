"""A Redis failover that keeps the old primary running: it becomes a replica of the new one.

That is how managed Redis services fail over (a maintenance window, a replica promoted by Sentinel):
the endpoint's DNS name moves to the new primary, while the connections a client already holds stay
open to the old one, now read-only. Every write on them fails ``READONLY You can't write against a
read only replica`` (a reply, not a dropped connection), so redis-py keeps them; the worker retried
its batch on them for ever, every agent stalled, and only a restart helped (redis/redis-py#460,
alphagov/notifications-utils#1279).

Here a TCP proxy stands in for the endpoint: connections it accepted before the failover stay with
the old primary, new ones go to the new primary. A worker's batch that meets ``READONLY`` now drops
the pool's connections before its retry (creditstream/connections.py ``reconnect_after_failover``),
and the next connections reach the new primary.
"""

from __future__ import annotations

import dataclasses

import pytest

from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.redis_servers import Endpoint, doc_nos, redis_server

pytestmark = [pytest.mark.integration]
PENALTY = schema_of("penalty")


async def test_a_worker_goes_on_after_a_failover_that_left_the_old_primary_read_only(tmp_path, settings, department):
    from creditstream.app import Pipeline

    old, old_client, old_port = await redis_server(tmp_path, "old")
    new, new_client, new_port = await redis_server(tmp_path, "new")
    await new_client.execute_command("REPLICAOF", "127.0.0.1", old_port)
    endpoint = Endpoint(old_port)
    await endpoint.start()
    s = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{endpoint.port}/0")
    worker = Pipeline(s)
    try:
        await worker.start()
        await department.send(PENALTY, sample_event("penalty", decision_doc_no="沪罚〔2024〕61号"))

        async def first():
            return "沪罚〔2024〕61号" in await doc_nos(old_client, s)

        await eventually(first, timeout=30)
        assert await old_client.execute_command("WAIT", 1, 5000) == 1  # the replica has every write

        # the failover: the replica promoted, the old primary made its replica (read-only), the
        # endpoint's name moved to the new primary
        await new_client.execute_command("REPLICAOF", "NO", "ONE")
        await old_client.execute_command("REPLICAOF", "127.0.0.1", new_port)
        endpoint.target = new_port
        from redis.exceptions import ReadOnlyError

        with pytest.raises(ReadOnlyError):
            await old_client.set("probe", "1")

        await department.send(PENALTY, sample_event("penalty", decision_doc_no="沪罚〔2024〕62号"))

        async def second():
            return "沪罚〔2024〕62号" in await doc_nos(new_client, s)

        await eventually(second, timeout=30, interval=0.5)
        assert await doc_nos(new_client, s) == {"沪罚〔2024〕61号", "沪罚〔2024〕62号"}
    finally:
        await worker.stop()
        await endpoint.stop()
        for client in (old_client, new_client):
            await client.aclose()
        for proc in (old, new):
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()
