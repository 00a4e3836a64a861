"""The re-drive audit (``{ns}:dlq:redriven``) lasts as long as the dead letters do: a re-drive drops
the entries of letters the dead-letter topic no longer holds (ops/dlq.py ``forget_expired``). A soak
run found the hash never trimmed (270 bytes a re-drive), outliving the letters' 90-day retention.

Apache Kafka only: DeleteRecords stands in for the retention (the same log start moved); Tansu
neither deletes by retention nor offers DeleteRecords."""

from __future__ import annotations

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import RecordsToDelete

from ops import dlq
from sinks.keys import Keys
from streams import kafka
from streams.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.kafka_only]


async def test_the_audit_forgets_the_redrives_of_letters_the_topic_no_longer_holds(settings, department, redis):
    topic = Topics(settings).dead_letters
    for i in range(4):
        await (await department.producer.send(topic, f"letter {i}".encode(), partition=0))
    audit = Keys(settings.namespace).dlq_redriven
    entry = orjson.dumps({"at": "2026-12-07T10:00:00+08:00", "by": "tester", "fixed": False})
    await redis.hset(audit, mapping={"0:0": entry, "0:1": entry, "0:3": entry, "1:0": entry, "junk": entry})
    tp = TopicPartition(topic, 0)
    admin = kafka.admin(settings)
    await admin.start()
    try:
        assert await admin.delete_records({tp: RecordsToDelete(2)}) == {tp: 2}  # the retention's work
    finally:
        await admin.close()
    assert await dlq.forget_expired(settings, redis, audit) == 2
    assert sorted(k.decode() for k in await redis.hkeys(audit)) == ["0:3", "1:0", "junk"]
    assert await dlq.forget_expired(settings, redis, audit) == 0
