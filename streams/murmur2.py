"""Kafka's murmur2 of a message key: where the Java client and aiokafka's ``DefaultPartitioner`` put a
keyed message (``(murmur2(key) & 0x7FFFFFFF) % partitions``), and so where the workers put every
subject event and where a replay checks that each one is (sinks/kafka.py ``key_hash``).

aiokafka's ``murmur2`` is pure Python: ~4 us for a subject's key, 0.7% of a worker's time even with
the hashes remembered (at a million subjects most keys are new to the worker's table). This one is
compiled with the rules core (ops/build_core.py ``ALSO_COMPILED``), its arithmetic on 64-bit
machine integers (``i64``: no product here exceeds 2^63), ~0.1 us a key; it gives the same value as
aiokafka's for every key (tests/unit/test_murmur2.py). Run as plain Python (no build,
``CREDITSTREAM_PURE_PYTHON=1``), ``i64`` is ``int`` and the values are the same.
"""

from __future__ import annotations

from typing import Final

from mypy_extensions import i64  # a machine integer compiled; plain ``int`` when run as Python

SEED: Final = 0x9747B28C
M: Final = 0x5BD1E995
MASK: Final = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """The 32-bit murmur2 hash Kafka's clients partition keys by (unsigned; the partitioner masks
    its sign bit)."""
    length: i64 = len(data)
    h: i64 = (SEED ^ length) & MASK
    end: i64 = length & ~3
    i: i64 = 0
    k: i64
    while i < end:
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * M) & MASK
        k ^= k >> 24
        k = (k * M) & MASK
        h = ((h * M) & MASK) ^ k
        i += 4
    extra: i64 = length - end
    if extra >= 3:
        h ^= data[end + 2] << 16
    if extra >= 2:
        h ^= data[end + 1] << 8
    if extra >= 1:
        h ^= data[end]
        h = (h * M) & MASK
    h ^= h >> 13
    h = (h * M) & MASK
    h ^= h >> 15
    return h
