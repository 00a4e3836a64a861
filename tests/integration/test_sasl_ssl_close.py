"""Closing a Kafka client over TLS on uvloop, the processes' default event loop (creditstream/eventloop.py).

Seen against an Apache Kafka requiring SASL_SSL: one close in two or three took 30 s more. aiokafka
waits for each connection's ``connection_lost``; on uvloop a TLS transport calls it once the broker
has answered the TLS close_notify, which Kafka 4.4 often does not, or after uvloop's 30-s
``ssl_shutdown_timeout``. So `creditstream report`, `replay`, `dlq` over SASL_SSL took 30 s longer
now and then, and a worker's consumers as long to stop. A connection is now closed at once
(streams/kafka.py ``_close_tls_at_once``): nothing is in flight when a client closes one."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.kafka]


def test_a_read_to_the_end_closes_at_once_over_tls_on_uvloop(sasl_settings):
    """A topic read to its end (`report`, `dlq list`, `replay`), eight times: its consumer closes while
    a fetch waits at the broker. Before, three or four of the eight took 30 s."""
    uvloop = pytest.importorskip("uvloop")
    from streams import kafka
    from streams.topics import Topics

    s = sasl_settings
    topic = Topics(s).dead_letters

    async def write_one():
        await kafka.ensure_topics(s, [topic])
        producer = kafka.producer(s)
        await producer.start()
        try:
            await (await producer.send(topic, b"x", key=b"k"))
        finally:
            await producer.stop()

    async def read() -> float:
        t0 = time.monotonic()
        async for _ in kafka.read_to_end(s, topic):
            pass
        return round(time.monotonic() - t0, 1)

    loop = uvloop.new_event_loop()
    try:
        loop.run_until_complete(write_one())
        took = [loop.run_until_complete(read()) for _ in range(8)]
    finally:
        loop.close()
    assert max(took) < 5, took
