"""sinks/kafka.py: keyed messages go to the partition Kafka's default partitioner gives them."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.kafka import KafkaSink


class Placing:
    """A producer that only places messages, with aiokafka's own default partitioner."""

    _partitioner = DefaultPartitioner()

    def __init__(self, partitions: dict[str, int]):
        self.partitions = partitions

    async def partitions_for(self, topic):
        return set(range(self.partitions[topic]))


@settings(max_examples=60)
@given(keys=st.lists(st.binary(min_size=0, max_size=40) | st.text(min_size=1, max_size=20).map(str.encode),
                     min_size=1, max_size=40),
       partitions=st.integers(min_value=1, max_value=64))
def test_keyed_messages_are_placed_as_the_default_partitioner_places_them(keys, partitions):
    sink = KafkaSink(Placing({"a": partitions, "b": 7}))
    for i, key in enumerate(keys * 2):  # every key twice: the second from the cache
        sink.add("a" if i % 3 else "b", b"v%d" % i, key=key)
    groups = asyncio.run(sink._by_partition())
    placed = {(topic, id(m)): p for (topic, p), ms in groups.items() for m in ms}
    for m in sink._buffer:
        n = partitions if m.topic == "a" else 7
        assert placed[(m.topic, id(m))] == DefaultPartitioner()(m.key, list(range(n)), list(range(n)))
    # order kept within a partition
    for ms in groups.values():
        assert [sink._buffer.index(m) for m in ms] == sorted(sink._buffer.index(m) for m in ms)


@settings(max_examples=60)
@given(keys=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=40),
       placed=st.integers(min_value=1, max_value=32), more=st.integers(min_value=0, max_value=32))
def test_a_placed_topic_keeps_its_recorded_count_whatever_partitions_the_topic_has_now(keys, placed, more):
    """streams/placement.py: partitions added to the topic (``more``) move no subject."""
    producer = Placing({"a": placed + more, "b": placed + more})
    producer.placement = {"a": placed}
    sink = KafkaSink(producer)
    for i, key in enumerate(keys):
        sink.add("a", b"v%d" % i, key=key)
        sink.add("b", b"v%d" % i, key=key)
        sink.add("a", b"unkeyed %d" % i)
    groups = asyncio.run(sink._by_partition())
    assert all(p < placed for (topic, p) in groups if topic == "a")
    for (topic, p), ms in groups.items():
        for m in ms:
            if m.key is None:
                continue
            n = placed if topic == "a" else placed + more  # "b" is not placed: the producer's metadata
            assert p == DefaultPartitioner()(m.key, list(range(n)), list(range(n)))


class Pending(Placing):
    """A producer whose batches are never acknowledged: their futures stay pending."""

    def __init__(self, partitions: dict[str, int]):
        super().__init__(partitions)
        self.futures: list[asyncio.Future] = []

    def create_batch(self):
        class Batch:
            def append(self, **kwargs):
                return object()
        return Batch()

    async def send_batch(self, batch, topic, partition):
        self.futures.append(asyncio.get_running_loop().create_future())
        return self.futures[-1]


def test_a_flush_cancelled_never_cancels_the_clients_futures():
    """Ctrl-C on a command cancels the flush as the signal comes (asyncio.run's handler runs between
    any two lines): the client's futures cancelled with it, the client, resolving one it had just seen
    pending, failed ("Unexpected error in sender routine", InvalidStateError: a CI run of produce)."""
    async def run():
        producer = Pending({"a": 3})
        sink = KafkaSink(producer)
        for i in range(6):
            sink.add("a", b"v%d" % i, key=b"k%d" % i)
        flush = asyncio.ensure_future(sink.flush())
        while not producer.futures:
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        flush.cancel()
        await asyncio.gather(flush, return_exceptions=True)
        assert flush.cancelled()
        assert producer.futures and not any(f.done() for f in producer.futures)
        for f in producer.futures:  # as the client resolves them afterwards: no InvalidStateError
            f.set_result(None)

    asyncio.run(run())
