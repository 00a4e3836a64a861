"""A replay in several processes runs unfenced only while every input sits on its subject's one
partition (ops/replay.py ``refuse_strays``): keyed by the subject's storage id under the current
pseudonym key, on the partition Kafka's murmur2 of that key names."""

import datetime as dt
from collections import namedtuple

import pytest

from bench.core import SUBJECT, penalty
from domain import events
from ops.replay import StraySubject, refuse_strays
from sinks.kafka import key_hash
from sinks.keys import Keys

Record = namedtuple("Record", "topic partition offset key value")
PARTITIONS = 4
PERSON = "11010519491231002X"


def record(subject: str, key: bytes | None, partition: int, offset: int = 0) -> Record:
    ev = events.of_record(subject, "uscc", f"creditstream.penalty/0/{offset}", penalty(offset, dt.date(2021, 1, 4)),
                          1_700_000_000_000)
    return Record("cs.subject-events", partition, offset, key, events.encode(ev))


def home(key: bytes) -> int:
    return key_hash(key) % PARTITIONS


def test_inputs_keyed_by_their_subject_on_its_partition_pass():
    keys = Keys(pseudonym_key="current")
    company, person = SUBJECT.encode(), keys.storage_id(PERSON).encode()
    refuse_strays([record(SUBJECT, company, home(company)), record(PERSON, person, home(person), 1)],
                  PARTITIONS, keys)


def test_an_input_on_another_partition_than_its_key_names_is_a_stray():
    key = SUBJECT.encode()
    with pytest.raises(StraySubject, match="keyed for partition"):
        refuse_strays([record(SUBJECT, key, (home(key) + 1) % PARTITIONS, 7)], PARTITIONS, Keys())


def test_a_person_keyed_under_an_earlier_pseudonym_key_is_a_stray_wherever_it_sits():
    old = Keys(pseudonym_key="before").storage_id(PERSON).encode()
    with pytest.raises(StraySubject, match="current pseudonym key"):
        refuse_strays([record(PERSON, old, home(old))], PARTITIONS, Keys(pseudonym_key="current"))


def test_an_input_without_a_key_is_a_stray():
    with pytest.raises(StraySubject, match="without a key"):
        refuse_strays([record(SUBJECT, None, 0)], PARTITIONS, Keys())


def test_a_value_that_is_no_subject_event_is_left_to_the_rebuild():
    key = SUBJECT.encode()
    refuse_strays([Record("cs.subject-events", home(key), 0, key, b"not json")], PARTITIONS, Keys())
