"""Reading a topic to its end when the broker stops answering for a while (streams/kafka.py
``read_to_end``): the read waits and returns every record, or says it could not; it never ends
early as if the topic were shorter. A read cut short was a replay rebuilding part of the state and
calling it complete (``creditstream replay``), and, seen in the reliability suite on a 3-node
Apache Kafka, a consumer whose close raised CancelledError after a fetch timed out
(``stop_consumer``)."""

from __future__ import annotations

import asyncio

import pytest

from streams import kafka

pytestmark = pytest.mark.integration

RECORDS = 1500


async def _topic_of(settings, name: str) -> str:
    topic = f"{settings.topic_prefix}{name}"
    await kafka.ensure_topics(settings, [topic])
    producer = kafka.producer(settings)
    await producer.start()
    try:
        futures = [await producer.send(topic, f"{i:06d}".encode() * 170, key=f"k{i}".encode())
                   for i in range(RECORDS)]
        await producer.flush()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return topic


async def test_a_broker_that_stops_answering_mid_read_delays_the_read_and_loses_nothing(settings, stack):
    topic = await _topic_of(settings, "read-stall")
    loop = asyncio.get_running_loop()
    got: list[bytes] = []
    paused = False
    try:
        # small fetches, so that most of the topic is still on the broker when it stops answering
        async for batch in kafka.read_to_end(settings, topic, max_records=50,
                                             fetch_bytes=16 * 1024):
            got.extend(r.value for r in batch)
            if not paused:
                paused = True
                await asyncio.to_thread(stack.pause_broker)  # 2 s without an answer
                loop.call_later(2.0, stack.resume_broker)
    finally:
        stack.resume_broker()
    assert paused
    assert len(got) == RECORDS, f"read {len(got)} of {RECORDS} records: the read ended while the broker was paused"
    assert len(set(got)) == RECORDS


async def test_a_broker_that_does_not_come_back_fails_the_read_loudly(settings, stack):
    topic = await _topic_of(settings, "read-gone")
    got = 0
    try:
        with pytest.raises(kafka.ReadIncomplete) as raised:
            async for batch in kafka.read_to_end(settings, topic, stall_timeout_s=1.5,
                                                 max_records=50, fetch_bytes=16 * 1024):
                got += len(batch)
                if got == len(batch):
                    await asyncio.to_thread(stack.pause_broker)
    finally:
        stack.resume_broker()
    err = raised.value
    assert err.topic == topic and err.short
    assert all(end is None or pos < end for pos, end in err.short.values())
    assert "short of their end" in str(err)


async def test_a_consumer_stops_whole_when_aiokafka_raises_cancelled_error_out_of_stop(settings):
    """aio-libs/aiokafka#647, as it failed the reliability suite: a fetch that has just failed
    leaves a task of the fetcher sleeping its retry back-off; ``stop()`` cancels and awaits it
    unguarded, raises its ``CancelledError``, and never closes the client. ``stop_consumer``
    finishes the job and raises nothing."""
    c = kafka.consumer(settings, group_id=None)
    await c.start()
    assert c._client._sync_task is not None  # noqa: SLF001 - the client's metadata routine, running
    # the fetcher as aiokafka leaves it after a failed fetch (fetcher.py, _proc_fetch_request)
    c._fetcher._pending_tasks.add(asyncio.ensure_future(asyncio.sleep(0.1)))  # noqa: SLF001
    await kafka.stop_consumer(c)
    assert c._client._sync_task is None  # noqa: SLF001 - AIOKafkaClient.close() ran
    assert not any(conn.connected() for conn in c._client._conns.values())  # noqa: SLF001

