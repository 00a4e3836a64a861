"""streams/murmur2.py, Kafka's murmur2 of a message key (where every subject event goes, and where a
replay checks it is): the same value as aiokafka's pure-Python one for any key, and Apache Kafka's
own test vectors (``UtilsTest.testMurmur2``, signed as Java returns them). Runs compiled or not, as
the core does (the pure-Python leg of CI runs it with ``CREDITSTREAM_PURE_PYTHON=1``)."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as aiokafka_murmur2
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.kafka import home_partition, key_hash
from streams.murmur2 import murmur2

KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


def _signed(h: int) -> int:
    return h - (1 << 32) if h >= 1 << 31 else h


def test_apache_kafkas_vectors():
    for key, expected in KAFKA_VECTORS.items():
        assert _signed(murmur2(key)) == expected, key


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=80))
def test_as_aiokafkas_for_any_key(key):
    h = murmur2(key)
    assert h == aiokafka_murmur2(key)
    assert 0 <= h < 1 << 32


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_placed_as_aiokafkas_partitioner_places(key, count):
    partitions = list(range(count))
    assert key_hash(key) == aiokafka_murmur2(key) & 0x7FFFFFFF
    assert home_partition(key, partitions) == DefaultPartitioner()(key, partitions, partitions)


def test_every_length_up_to_a_few_words():
    # each tail (0-3 bytes after the last whole word), with the high bit set in every byte
    for n in range(0, 24):
        key = bytes((0x80 | (i * 37)) & 0xFF for i in range(n))
        assert murmur2(key) == aiokafka_murmur2(key), n
