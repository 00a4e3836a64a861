"""Hostile input: thousands of generated messages (random bytes, truncated Avro, unknown schema ids,
huge strings, bad codes, impossible and future dates, negative amounts, unknown enums, odd unicode)
on every department topic. The worker never crashes, every message is dead-lettered with a reason
or applied, and no partition is blocked: a valid event sent after them all still arrives."""

from __future__ import annotations

import datetime as dt
import random
import struct
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams.samples import SCHEMA_OF_KIND, sample_event
from tests.conftest import eventually
from tests.reliability import harness
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

KINDS = ("penalty", "license", "court_listing", "court_deletion", "action", "objection", "repair",
         "listing_decision")
ODD_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)


def hostile_messages(codec, n: int, seed: int) -> list[tuple[str, bytes]]:
    """(kind, value) pairs: a seeded mix of every kind of bad input, some valid among them."""
    collected: list[tuple[str, bytes]] = []
    rng = random.Random(seed)

    @hsettings(max_examples=n, derandomize=True, database=None, deadline=None,
               suppress_health_check=list(HealthCheck))
    @given(st.data())
    def generate(data):
        kind = data.draw(st.sampled_from(KINDS))
        schema = SCHEMA_OF_KIND[kind]
        how = data.draw(st.integers(0, 9))
        if how == 0:
            collected.append((kind, data.draw(st.binary(max_size=300))))
            return
        if how == 1:
            collected.append((kind, b"\x00" + struct.pack(">I", data.draw(st.integers(12, 2 ** 32 - 1)))
                              + data.draw(st.binary(max_size=50))))
            return
        rec = sample_event(kind)
        if how == 2:
            rec[data.draw(st.sampled_from([k for k, v in rec.items() if isinstance(v, str)]))] = \
                "字" * data.draw(st.integers(5000, 60_000))
        elif how == 3:
            for key in ("uscc", "org_code", "reg_no", "person_id_no", "legal_rep_id_no"):
                if key in rec:
                    rec[key] = data.draw(st.text(alphabet="0123456789ABCDXYZ-（） ", min_size=0, max_size=20))
        elif how == 4:
            date_keys = [k for k, v in rec.items() if isinstance(v, dt.date)]
            if date_keys:
                rec[data.draw(st.sampled_from(date_keys))] = data.draw(
                    st.sampled_from([dt.date(1, 1, 1), dt.date(1800, 2, 28), dt.date(2999, 12, 31),
                                     dt.date(2040, 1, 1)]))
        elif how == 5:
            for key in ("fine_amount", "confiscated_amount"):
                if key in rec:
                    rec[key] = Decimal(-data.draw(st.integers(1, 10 ** 9))) / 100
        elif how == 6:
            for key in ("subject_category", "severity", "status", "listing_reason", "deletion_reason",
                        "license_category", "action_kind", "list_domain", "action", "target_kind"):
                if key in rec:
                    rec[key] = data.draw(ODD_TEXT)
        elif how == 7:
            for key, value in list(rec.items()):
                if isinstance(value, str) and data.draw(st.booleans()):
                    rec[key] = data.draw(ODD_TEXT)
        # how 8, 9: valid as generated (the fuzz also carries good traffic)
        try:
            value = codec.encode(schema, rec)
        except Exception:  # noqa: BLE001 - the department's own encoder would refuse it: send garbage
            value = bytes(rng.randrange(256) for _ in range(40))
        if how == 7 and data.draw(st.booleans()):
            value = value[: data.draw(st.integers(0, max(0, len(value) - 1)))]  # truncated Avro
        collected.append((kind, value))

    generate()
    return collected


async def test_hostile_input_never_crashes_and_is_dead_lettered_with_a_reason(settings, department, redis,
                                                                               tmp_path):
    from ops.dlq import list_dead_letters
    from ops.report import progress

    messages = hostile_messages(department.codec, harness.FUZZ, seed=5)
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        for kind, value in messages:
            await department.producer.send(department.topics.for_kind(kind), value)
        await department.producer.flush()
        # no partition blocked: a valid event after them all, on every partition of the penalty topic
        for p in range(settings.partitions):
            await department.producer.send(department.topics.penalty, department.codec.encode(
                SCHEMA_OF_KIND["penalty"], sample_event("penalty", decision_doc_no=f"郑市监罚〔2024〕{9000 + p}号")),
                partition=p)
        await department.producer.flush()
        total = len(messages) + settings.partitions

        async def all_accounted():
            assert worker.alive(), worker.log_tail()
            return await progress(settings) >= total

        await eventually(all_accounted, timeout=300, interval=1.0)
        letters = await list_dead_letters(settings)
        assert letters, "hostile input produced no dead letter"
        assert all(d["reason"] for d in letters)
        import orjson

        from sinks.keys import Keys
        from sinks.redis_state import read_states

        (whole,) = await read_states(redis, Keys(settings.namespace), ["91310110666007217T"])  # split past 64 records
        state = orjson.dumps(whole) if whole is not None else None
        assert state is not None and all(f"〔2024〕{9000 + p}号".encode() in state for p in range(settings.partitions))
        lost = await harness.lost_inputs(settings, redis)
        assert not lost, lost[:10]
        assert worker.alive()
    finally:
        worker.stop()
        log = worker.log_tail(10 ** 9)
        harness.record(fuzz_cases=len(messages), crashes=int(worker.proc.returncode not in (0, -15, None))
                       + harness.crashes("fuzz", log), pii_leaks=len(harness.pii_leaks(log)))
    assert not harness.pii_leaks(log)
