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

        async def first_on_the_replica():
            # read there too: under load (make test-redis's lanes, Valkey 9.1, 1 run in 14), both
            # servers lacked every key of the state after the failover, WAIT notwithstanding, and the
            # worker rightly stopped with "Redis has no state" (its primary had none); with this
            # wait, 16 runs in 16 passed under the same load
            return "沪罚〔2024〕61号" in await doc_nos(new_client, s)

        await eventually(first_on_the_replica, timeout=30)

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


async def test_a_replica_answering_without_the_state_is_not_taken_for_a_lost_state(tmp_path, settings):
    """A worker's connection that stayed with a server now a replica reads that replica's data, not
    the primary's. A missing sentinel stopped the worker at once ("Redis has no state ... rebuild it
    with `creditstream replay --switch`"), whoever answered. Now it is asked again on a new
    connection, of a server that says it is a primary: a replica's answer is transient
    (ReplicaAnswered: the batch is retried), a primary's lack of it is StateLost as before."""
    from creditstream.connections import redis_client
    from sinks.keys import Keys
    from sinks.redis_state import ReplicaAnswered, StateLost, SubjectStateSink

    keys = Keys(settings.namespace)
    empty, empty_client, empty_port = await redis_server(tmp_path, "empty")
    replica, replica_client, _ = await redis_server(tmp_path, "replica")
    primary, primary_client, primary_port = await redis_server(tmp_path, "primary")
    await replica_client.execute_command("REPLICAOF", "127.0.0.1", empty_port)  # a replica, no data
    await primary_client.set(keys.sentinel, b"1")
    endpoint = Endpoint(0)
    await endpoint.start()
    clients = []

    def sink_through(target: int) -> SubjectStateSink:
        endpoint.target = target
        client = redis_client(dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{endpoint.port}/0"),
                              repeat_unanswered=False)
        clients.append(client)
        return SubjectStateSink(client, keys, cache_mb=0)

    try:
        # its connection with the replica; the endpoint moved to the primary meanwhile
        sink = sink_through(_port_of(replica_client))
        await sink.redis.ping()
        endpoint.target = primary_port
        with pytest.raises(ReplicaAnswered, match="there on a new connection"):
            await sink.begin([], [0], resumed=True)
        loaded = await sink.begin([], [0], resumed=True)  # the batch's retry: the primary's state
        assert loaded.positions == {0: None}
        await sink.abort()

        # the endpoint still names the replica: asked again later, never "no state"
        sink = sink_through(_port_of(replica_client))
        with pytest.raises(ReplicaAnswered, match="as a slave"):
            await sink.begin([], [0], resumed=True)

        # a primary without the sentinel: Redis lost its state, the worker stops loudly as before
        sink = sink_through(empty_port)
        with pytest.raises(StateLost):
            await sink.begin([], [0], resumed=True)
    finally:
        for client in (*clients, empty_client, replica_client, primary_client):
            await client.aclose()
        await endpoint.stop()
        for proc in (empty, replica, primary):
            if proc.returncode is None:
                proc.terminate()
            await proc.wait()


def _port_of(client) -> int:
    return client.connection_pool.connection_kwargs["port"]
