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
